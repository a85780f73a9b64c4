//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// pluginConf is librato-execd's own config; the token comes from the
// environment that outputs.execd passes.
const pluginConf = `[[outputs.librato]]
  api_user = {{printf "%q" .User}}
  api_token = "${LIBRATO_TOKEN}"
  api_url = {{printf "%q" .URL}}
`

const execdConf = `[agent]
  omit_hostname = true
  flush_interval = "1s"

[[inputs.file]]
  files = [{{printf "%q" .File}}]
  data_format = "influx"

[[outputs.execd]]
  command = [{{printf "%q" .Plugin}}, "-config", {{printf "%q" .PluginConf}}, "-flush_interval", "1s", "-spool_dir", {{printf "%q" .SpoolDir}}]
  environment = ["LIBRATO_TOKEN={{.Token}}"]
  data_format = "influx"
  ## Keep uint64 fields uint64 on the way to the plugin.
  influx_uint_support = true
`

func TestExecdOnceDeliversFixture(t *testing.T) {
	telegraf, plugin := telegrafExecd(t), libratoExecd(t)
	s := newFake(t, fakelibrato.Options{})
	dir := t.TempDir()
	data := map[string]string{
		"User": apiUser, "Token": apiToken, "URL": s.LegacyURL(),
		"File": fixture(t, "metrics.lp"), "Plugin": plugin,
		"SpoolDir": filepath.Join(dir, "spool"),
	}
	data["PluginConf"] = writeFile(t, dir, "librato-plugin.conf", pluginConf, data)
	conf := writeFile(t, dir, "execd.conf", execdConf, data)

	res := runOnce(t, nil, telegraf, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)
	requireExactGauges(t, s, fixtureGauges, res)
	require.NotContains(t, res.stderr, apiToken)
	// outputs.execd logs every stderr line of the plugin as an error: the
	// only one here is the plugin's warning about the metric without host.
	for _, l := range strings.Split(res.stderr, "\n") {
		// Telegraf's own race (it closes the pipe in cmd.Wait while its
		// reader may still read) is not a line of ours.
		if strings.Contains(l, "Error reading stderr: read |0: file already closed") {
			continue
		}
		if strings.Contains(l, "stderr:") {
			require.Contains(t, l, `Dropped 1 measurement(s) (empty_source), e.g. metric "nohost"`, res)
		}
	}
}

// TestExecdSIGTERMMidStream streams lines into librato-execd and signals it
// after n of them: all n arrive exactly once, lines written after the signal
// at most once, and the process exits 0.
func TestExecdSIGTERMMidStream(t *testing.T) {
	plugin := libratoExecd(t)
	s := newFake(t, fakelibrato.Options{Latency: 20 * time.Millisecond})
	dir := t.TempDir()
	conf := writeFile(t, dir, "librato-plugin.conf", pluginConf, map[string]string{"User": apiUser, "URL": s.LegacyURL()})

	cmd := exec.Command(plugin, "-config", conf, "-flush_interval", "500ms", "-batch_size", "250")
	cmd.Env = append(os.Environ(), "LIBRATO_TOKEN="+apiToken)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { killProcess(t, cmd.Process) })

	const n = 3000
	const t0 = int64(1_700_000_000)
	line := func(i int) string {
		return fmt.Sprintf("stream,host=h%d seq=%di %d\n", i%4, i, (t0+int64(i))*1e9)
	}
	w := bufio.NewWriter(stdin)
	for i := range n {
		_, err := w.WriteString(line(i))
		require.NoError(t, err)
		if i%100 == 99 {
			require.NoError(t, w.Flush())
			time.Sleep(2 * time.Millisecond) // a stream, not one burst
		}
	}
	require.NoError(t, w.Flush())
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))

	// Keep streaming after the signal, as a producer that has not noticed
	// yet would; stdin stays open.
	var after atomic.Int64
	go func() {
		for i := n; i < n+100_000; i++ {
			if _, err := io.WriteString(stdin, line(i)); err != nil {
				return
			}
			after.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()

	select {
	case err := <-exited:
		require.NoError(t, err, "librato-execd exit after SIGTERM\n%s", &stderr)
	case <-time.After(time.Minute):
		t.Fatalf("librato-execd did not exit after SIGTERM\n%s", &stderr)
	}
	for i := range n {
		got := s.CountGauge("stream.seq", fmt.Sprintf("h%d", i%4), t0+int64(i))
		require.Equalf(t, 1, got, "line %d (before the signal) arrived %d times\n%s", i, got, &stderr)
	}
	extra := 0
	for i := n; i < n+int(after.Load()); i++ {
		got := s.CountGauge("stream.seq", fmt.Sprintf("h%d", i%4), t0+int64(i))
		require.LessOrEqualf(t, got, 1, "line %d (after the signal) arrived %d times", i, got)
		extra += got
	}
	require.Len(t, s.Gauges(), n+extra)
	t.Logf("%d lines before SIGTERM, %d written after it, %d of those delivered", n, after.Load(), extra)
}

// TestExecdMemoryStaysFlat pipes many lines through librato-execd with
// -debug: Telegraf's buffer bounds the metrics held and SetupLogging keeps
// the logger from storing messages, so the peak RSS stays small.
func TestExecdMemoryStaysFlat(t *testing.T) {
	plugin := libratoExecd(t)
	s := newFake(t, fakelibrato.Options{})
	conf := writeFile(t, t.TempDir(), "librato-plugin.conf", pluginConf, map[string]string{"User": apiUser, "URL": s.LegacyURL()})

	cmd := exec.Command(plugin, "-config", conf, "-debug", "-flush_interval", "200ms")
	cmd.Env = append(os.Environ(), "LIBRATO_TOKEN="+apiToken)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { killProcess(t, cmd.Process) })

	const n = 300_000
	const t0 = int64(1_600_000_000)
	w := bufio.NewWriterSize(stdin, 1<<16)
	peak := func() int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		require.NoError(t, err)
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				_, err := fmt.Sscanf(strings.TrimPrefix(l, "VmHWM:"), "%d", &kb)
				require.NoError(t, err)
			}
		}
		return kb
	}
	var early int64
	for i := range n {
		_, err := fmt.Fprintf(w, "load,host=h%d value=%d %d\n", i%10, i, (t0+int64(i))*1e9)
		require.NoError(t, err)
		if i == n/10 {
			require.NoError(t, w.Flush())
			early = peak()
		}
	}
	require.NoError(t, w.Flush())
	eventually(t, 3*time.Minute, "all gauges at the fake", func() bool { return len(s.Gauges()) == n }, &stderr)
	late := peak()
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait(), "%s", &stderr)
	t.Logf("peak RSS after %d lines: %d KiB, after %d: %d KiB", n/10, early, n, late)
	require.Less(t, late, int64(150<<10), "peak RSS %d KiB", late)
	require.Less(t, late, early+40<<10, "RSS grew from %d KiB to %d KiB", early, late)
}

// TestExecdGroupSIGTERM sends SIGTERM to the whole process group, as
// Ctrl-C, timeout(1) or systemd's KillMode=control-group do: librato-execd
// must keep reading until Telegraf's final flush closed its stdin and
// deliver all of it (a plugins/common/shim binary dies here and loses it).
func TestExecdGroupSIGTERM(t *testing.T) {
	telegraf, plugin := telegrafExecd(t), libratoExecd(t)
	s := newFake(t, fakelibrato.Options{})
	dir := t.TempDir()
	data := map[string]string{
		"User": apiUser, "Token": apiToken, "URL": s.LegacyURL(),
		"File": fixture(t, "metrics.lp"), "Plugin": plugin,
		"SpoolDir": filepath.Join(dir, "spool"),
	}
	data["PluginConf"] = writeFile(t, dir, "librato-plugin.conf", pluginConf, data)
	// Telegraf gathers every 500ms but only flushes at shutdown.
	conf := writeFile(t, dir, "execd.conf", strings.Replace(execdConf,
		"  flush_interval = \"1s\"", "  flush_interval = \"1h\"\n  interval = \"500ms\"\n  debug = true", 1), data)

	cmd := exec.Command(telegraf, "--config", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() { killGroup(t, pgid) })

	eventually(t, time.Minute, "librato-execd to start", func() bool {
		return strings.Contains(stderr.String(), "Starting process")
	}, &stderr)
	time.Sleep(2500 * time.Millisecond) // a few gathers
	require.Empty(t, s.Requests(), "nothing is flushed before the signal")
	require.NoError(t, syscall.Kill(-pgid, syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "telegraf exit\n%s", &stderr)
	case <-time.After(time.Minute):
		t.Fatalf("telegraf did not exit after SIGTERM\n%s", &stderr)
	}

	// What Telegraf handed to outputs.execd, from its debug log.
	written := 0
	for _, l := range strings.Split(stderr.String(), "\n") {
		var n int
		if i := strings.Index(l, "[outputs.execd] Wrote batch of "); i >= 0 {
			_, err := fmt.Sscanf(l[i:], "[outputs.execd] Wrote batch of %d metrics", &n)
			require.NoError(t, err, l)
			written += n
		}
		// Besides the metric without host, every gather repeats the
		// fixture's fixed timestamps, which Librato would merge: the plugin
		// warns about that too.
		if strings.Contains(l, "E! [outputs.execd]") && !strings.Contains(l, "empty_source") &&
			!strings.Contains(l, "Librato keeps one value per metric name") &&
			!strings.Contains(l, "Error reading stderr: read |0: file already closed") {
			t.Errorf("unexpected error: %s", l)
		}
	}
	const perGather = 7 // metrics in metrics.lp
	require.Positive(t, written, "%s", &stderr)
	require.Zero(t, written%perGather, "%s", &stderr)
	gathers := written / perGather
	for _, g := range fixtureGauges {
		require.Equalf(t, gathers, s.CountGauge(g.Name, g.Source, g.MeasureTime),
			"%s: one per gather\n%s", g, &stderr)
	}
	require.Len(t, s.Gauges(), gathers*len(fixtureGauges))
	t.Logf("%d gathers, %d metrics handed to librato-execd, %d gauges delivered", gathers, written, len(s.Gauges()))
}
