//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// pinnedVersion is the Telegraf release go.mod requires.
const pinnedVersion = "v1.39.3"

// telegrafVersions are the releases TestConfigBuild builds: the pinned one
// and the newest the module proxy serves. TELEGRAF_VERSIONS (comma or space
// separated) narrows them for a quicker run.
func telegrafVersions() []string {
	if v := os.Getenv("TELEGRAF_VERSIONS"); v != "" {
		return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return []string{pinnedVersion, "v1.40.1"}
}

// TestConfigBuild is the custom-build route as a user takes it: build a
// Telegraf for testdata/system.conf (inputs cpu, mem, disk and file, and
// [[outputs.librato]]) with scripts/build-telegraf.sh --config, for each
// supported release, and run that file --once against the fake API.
func TestConfigBuild(t *testing.T) {
	for _, version := range telegrafVersions() {
		t.Run(version, func(t *testing.T) {
			conf := fixture(t, "system.conf")
			bin := buildForConfig(t, version, conf)

			t.Run("delivers every metric once", func(t *testing.T) {
				s := newFake(t, fakelibrato.Options{})
				res := runOnce(t, systemVars(fixture(t, "metrics.lp"), s.LegacyURL(), apiUser, apiToken), bin, "--config", conf, "--once")
				require.Equal(t, 0, res.code, res)
				require.Contains(t, res.stderr, strings.TrimPrefix(version, "v")+"-librato")
				requireSystemGauges(t, s, res)
				// The build records this module's version for the User-Agent.
				reqs := s.Requests()
				require.NotEmpty(t, reqs)
				require.Regexp(t, `^telegraf-output-librato/v\d+\.\d+\.\d+`, reqs[0].Header.Get("User-Agent"))
			})

			t.Run("unset token stops startup", func(t *testing.T) {
				s := newFake(t, fakelibrato.Options{})
				vars := systemVars(fixture(t, "metrics.lp"), s.LegacyURL(), apiUser, apiToken)
				env := withoutEnv(append(os.Environ(), vars...), "LIBRATO_TOKEN")
				res := runWithEnv(t, env, bin, "--config", conf, "--once")
				require.NotEqual(t, 0, res.code, res)
				require.Contains(t, res.stderr, "api_token uses environment variable LIBRATO_TOKEN, which is not set", res)
				require.NotContains(t, res.stderr, "${LIBRATO_TOKEN}") // nor is it sent
				require.Empty(t, s.Requests())
			})

			t.Run("tag filter globs", func(t *testing.T) {
				requireTagFilterGlobs(t, version, bin)
			})

			if version == pinnedVersion {
				t.Run("librato-tryout -serve", func(t *testing.T) {
					requireServeShowsDelivery(t, bin, conf)
				})
			}
		})
	}
}

// buildForConfig runs the build script as the README says, into a temp dir.
func buildForConfig(t *testing.T, version, conf string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "telegraf")
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "build-telegraf.sh"), "--config", conf, "-o", out)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "TELEGRAF_VERSION="+version)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build-telegraf.sh --config %s failed:\n%s", conf, b)
	t.Logf("built Telegraf %s for %s in %s", version, filepath.Base(conf), time.Since(start).Round(time.Second))
	// The tags custom_builder chose, and nothing else.
	require.Contains(t, string(b), "build tags: custom,inputs.cpu,inputs.disk,inputs.file,inputs.mem,migrations,outputs.librato,parsers.influx\n")
	require.Contains(t, string(b), "is this module's")
	return out
}

// systemVars is the environment testdata/system.conf reads.
func systemVars(lp, url, user, token string) []string {
	return []string{"FIXTURE_LP=" + lp, "LIBRATO_API_URL=" + url, "LIBRATO_USER=" + user, "LIBRATO_TOKEN=" + token}
}

func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

// requireSystemGauges: the fixture's gauges each once (the metric without
// a host tag now gets the agent's), and gauges of the three system inputs
// from host it-host, nothing twice.
func requireSystemGauges(t *testing.T, s *fakelibrato.Server, log fmt.Stringer) {
	t.Helper()
	for _, g := range append(slices.Clone(fixtureGauges), gauge{"nohost", "it-host", 1, 1700000050}) {
		require.Equalf(t, 1, s.CountGauge(g.Name, g.Source, g.MeasureTime), "%s\n%s", g, log)
	}
	seen := map[string]int{}
	for _, g := range s.Gauges() {
		seen[fmt.Sprintf("%s|%s|%d", g.Name, g.Source, g.MeasureTime)]++
		if g.Source == "it-host" {
			seen[g.Name+"@it-host"]++
		}
	}
	for _, name := range []string{"cpu.usage_idle", "mem.used_percent", "disk.used_percent"} {
		require.Positivef(t, seen[name+"@it-host"], "no %s from it-host\n%s", name, log)
	}
	for k, n := range seen {
		if strings.Count(k, "|") == 2 {
			require.Equalf(t, 1, n, "%s stored %d times", k, n)
		}
	}
}

// requireTagFilterGlobs pins the difference the README documents: from
// v1.40 Telegraf's filters read {a,b} as a pattern, before it as a literal
// tag key.
func requireTagFilterGlobs(t *testing.T, version, bin string) {
	t.Helper()
	s := newFake(t, fakelibrato.Options{})
	conf := writeFileConf(t, s.TaggedURL(), "  api = \"tagged\"\n  tags_include = [\"{host,path}\"]")
	res := runOnce(t, nil, bin, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)
	if version < "v1.40" {
		require.Empty(t, s.Measurements(), res)
		require.Contains(t, res.stderr, "no_tags", res)
		return
	}
	got := s.Measurements()
	require.Len(t, got, len(fixtureGauges), res) // all but nohost, which has no tag
	for _, m := range got {
		require.Contains(t, m.Tags, "host", m.Name)
		for k := range m.Tags {
			require.Contains(t, []string{"host", "path"}, k, m.Name)
		}
	}
}

// requireServeShowsDelivery points the built Telegraf at librato-tryout
// -serve with the credentials it prints, as the README suggests.
func requireServeShowsDelivery(t *testing.T, bin, conf string) {
	t.Helper()
	tryout := filepath.Join(t.TempDir(), "librato-tryout")
	build := exec.Command("go", "build", "-o", tryout, "./cmd/librato-tryout")
	build.Dir = repoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	addr := freeAddr(t)
	serve := exec.Command(tryout, "-serve", addr)
	var stdout syncBuffer
	serve.Stdout, serve.Stderr = &stdout, &stdout
	require.NoError(t, serve.Start())
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() { killProcess(t, serve.Process) })
	eventually(t, time.Minute, "librato-tryout -serve to listen", func() bool {
		return strings.Contains(stdout.String(), "api_url = ")
	}, &stdout)
	banner := stdout.String()
	require.Contains(t, banner, `api_user = "tryout@example.com"`)
	require.Contains(t, banner, `api_token = "tryout-token"`)

	// The fake keeps Librato's one-hour window: a metric of now.
	lp := filepath.Join(t.TempDir(), "now.lp")
	require.NoError(t, os.WriteFile(lp, []byte("swap,host=web01 value=0.5\n"), 0o600))
	res := runOnce(t, systemVars(lp, "http://"+addr+"/v1/metrics", "tryout@example.com", "tryout-token"),
		bin, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)
	require.NoError(t, serve.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "%s", &stdout)
	case <-time.After(time.Minute):
		t.Fatalf("librato-tryout -serve did not stop on SIGINT\n%s", &stdout)
	}
	printed := stdout.String()
	require.Regexp(t, `POST /v1/metrics -> 200: \d+ stored`, printed)
	require.Regexp(t, `(?m)^  cpu\.usage_idle +it-host +`, printed)
	require.Regexp(t, `(?m)^  swap +web01 +0\.5 +\d{4}-`, printed)
	require.Regexp(t, `Stopped after \d+ requests: \d+ measurements arrived, \d+ values stored, \d+ merged into existing values; 0 requests rejected;`, printed)
}
