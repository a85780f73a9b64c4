//go:build integration

package integration

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const listenerToken = "listener-s3cr3t"

// TestListenerBuild is inputs.librato_listener as a user takes it: build a
// Telegraf for testdata/listener.conf ([[inputs.librato_listener]] and
// [[outputs.file]]) with scripts/build-telegraf.sh --config, run it, and
// post what Librato clients send. Only the pinned release: the build is the
// test's cost, and the plugin's code does not differ between releases.
func TestListenerBuild(t *testing.T) {
	conf := fixture(t, "listener.conf")
	bin := filepath.Join(t.TempDir(), "telegraf")
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "build-telegraf.sh"), "--config", conf, "-o", bin)
	cmd.Dir = repoRoot(t)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build-telegraf.sh --config listener.conf failed:\n%s", out)
	t.Logf("built Telegraf for listener.conf in %s", time.Since(start).Round(time.Second))
	require.Contains(t, string(out), "build tags: custom,inputs.librato_listener,migrations,outputs.file,outputs.librato,serializers.influx\n")
	require.Contains(t, string(out), "inputs.librato_listener is in")

	addr := freeAddr(t)
	outFile := filepath.Join(t.TempDir(), "metrics.out")
	agent := exec.Command(bin, "--config", conf)
	agent.Env = append(os.Environ(), "LISTENER_ADDRESS="+addr, "LISTENER_TOKEN="+listenerToken, "OUTPUT_FILE="+outFile)
	var logs syncBuffer
	agent.Stdout, agent.Stderr = &logs, &logs
	require.NoError(t, agent.Start())
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		<-exited
	})
	base := "http://" + addr
	eventually(t, time.Minute, "the listener to answer", func() bool {
		resp, err := http.Get(base + "/v1/metrics?length=1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, &logs)

	send := func(path, user, pass, body string, gz bool) (int, string) {
		t.Helper()
		var rd io.Reader = strings.NewReader(body)
		if gz {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, err := zw.Write([]byte(body))
			require.NoError(t, err)
			require.NoError(t, zw.Close())
			rd = &b
		}
		req, err := http.NewRequest(http.MethodPost, base+path, rd)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.SetBasicAuth(user, pass)
		client := http.Client{Timeout: time.Minute}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	// Accepted: legacy gauges with sources (email + token), a complex gauge
	// (AppOptics-style token as user, gzipped), tagged measurements.
	code, body := send("/v1/metrics", "agent@example.com", listenerToken,
		`{"source":"web1","measure_time":1700000000,"gauges":[{"name":"cpu.user","value":12.5},{"name":"cpu.system","value":3,"source":"web2"}]}`, false)
	require.Equal(t, http.StatusOK, code, "%s\n%s", body, &logs)
	code, body = send("/v1/metrics", listenerToken, "",
		`{"gauges":{"req.latency":{"count":4,"sum":10.5,"min":0.5,"max":6,"source":"api-1","measure_time":1700000010}}}`, true)
	require.Equal(t, http.StatusOK, code, "%s\n%s", body, &logs)
	code, body = send("/v1/measurements", "agent@example.com", listenerToken,
		`{"tags":{"Region":"EU"},"time":1700000020,"measurements":[{"name":"queue.depth","value":11},{"name":"disk.free","value":5,"tags":{"host":"DB-1"}}]}`, false)
	require.Equal(t, http.StatusAccepted, code, "%s\n%s", body, &logs)
	require.Contains(t, body, `"failed":0`)

	// Refused, and nothing from them reaches the file.
	code, _ = send("/v1/metrics", "agent@example.com", "wrong", `{"gauges":[{"name":"refused.auth","value":1}]}`, false)
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = send("/v1/metrics", listenerToken, "", `{"gauges":[{"name":"refused.ok","value":1},{"name":"refused bad","value":1}]}`, false)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `"name"`)
	code, _ = send("/v1/metrics", listenerToken, "",
		`{"gauges":[{"name":"refused.big","value":1,"source":"`+strings.Repeat("x", 5000)+`"}]}`, false)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	// The 2xx came after the file output wrote: the file holds them now.
	got, err := os.ReadFile(outFile)
	require.NoError(t, err, "%s", &logs)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	require.ElementsMatch(t, []string{
		"cpu.user,source=web1 value=12.5 1700000000000000000",
		"cpu.system,source=web2 value=3 1700000000000000000",
		"req.latency,source=api-1 count=4i,sum=10.5,min=0.5,max=6 1700000010000000000",
		"queue.depth,region=eu value=11 1700000020000000000",
		"disk.free,host=db-1 value=5 1700000020000000000",
	}, lines, "%s", &logs)
	require.NotContains(t, string(got), "refused")
}

// TestListenerExecd runs cmd/librato-listener-execd as inputs.execd would
// (stdin held open, line protocol read from stdout): a post is answered 200
// once its metrics are on stdout, and the counter arrives untyped, as the
// README says of this route.
func TestListenerExecd(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "librato-listener-execd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/librato-listener-execd")
	build.Dir = repoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	addr := freeAddr(t)
	conf := filepath.Join(t.TempDir(), "listener.conf")
	require.NoError(t, os.WriteFile(conf, []byte("[[inputs.librato_listener]]\n  service_address = \""+addr+
		"\"\n  tokens = [\"${LISTENER_TOKEN}\"]\n"), 0o600))
	cmd := exec.Command(bin, "-config", conf)
	cmd.Env = append(os.Environ(), "LISTENER_TOKEN="+listenerToken)
	stdin, err := cmd.StdinPipe() // Telegraf keeps it open; closing it stops the shim
	require.NoError(t, err)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	body := `{"source":"web1","measure_time":1700000000,"gauges":[{"name":"cpu.user","value":12.5}],"counters":[{"name":"jobs.done","value":7}]}`
	var code int
	eventually(t, time.Minute, "the execd listener to answer", func() bool {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/metrics", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(listenerToken, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		code = resp.StatusCode
		return true
	}, &stderr)
	require.Equal(t, http.StatusOK, code, "%s", &stderr)
	// The shim wrote before it answered; the copy from its pipe into
	// stdout may still be under way.
	want := "cpu.user,source=web1 value=12.5 1700000000000000000\njobs.done,source=web1 value=7 1700000000000000000\n"
	eventually(t, time.Minute, "both lines on stdout", func() bool {
		return strings.Count(stdout.String(), "\n") >= 2
	}, &stderr)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.ElementsMatch(t, strings.Split(strings.TrimSpace(want), "\n"), lines, "%s", &stderr)

	require.NoError(t, stdin.Close())
	select {
	case <-exited:
		require.NoError(t, waitErr, "%s", &stderr)
	case <-time.After(time.Minute):
		t.Fatalf("the shim did not stop when stdin closed\n%s", &stderr)
	}
}
