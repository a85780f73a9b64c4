package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

const (
	testUser  = "agent@example.com"
	testToken = "s3cr3t-token"
	// t0 is the measure_time of the test lines (seconds).
	t0 = int64(1_700_000_000)
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFake(t *testing.T, opts fakelibrato.Options) *fakelibrato.Server {
	t.Helper()
	opts.User, opts.Token = testUser, testToken
	s := fakelibrato.New(opts)
	t.Cleanup(s.Close)
	return s
}

// writeConf writes a plugin config for the fake; extra is added inside the
// [[outputs.librato]] block, agent (if any) becomes an [agent] table.
func writeConf(t *testing.T, url, token, extra, agent string) string {
	t.Helper()
	var b strings.Builder
	if agent != "" {
		fmt.Fprintf(&b, "[agent]\n%s\n\n", agent)
	}
	fmt.Fprintf(&b, "[[outputs.librato]]\n  api_user = %q\n  api_token = %q\n  api_url = %q\n  retry_budget = \"200ms\"\n%s\n",
		testUser, token, url, extra)
	p := filepath.Join(t.TempDir(), "librato-plugin.conf")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

type result struct {
	code   int
	stderr *syncBuffer
}

// runWith runs the binary's logic in-process and waits for it (bounded).
func runWith(ctx context.Context, t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	res := result{stderr: &syncBuffer{}}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stdin, res.stderr) }()
	select {
	case res.code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not return; log:\n%s", res.stderr)
	}
	return res
}

// cpuLines returns n lines, line i having usage_idle=i and host web-<i%3>.
func cpuLines(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "cpu,host=web-%d usage_idle=%d %d\n", i%3, i, (t0+int64(i))*1e9)
	}
	return b.String()
}

// requireCPUOnce checks that each cpuLines gauge arrived exactly once.
func requireCPUOnce(t *testing.T, s *fakelibrato.Server, n int, log fmt.Stringer) {
	t.Helper()
	for i := range n {
		got := s.CountGauge("cpu.usage_idle", fmt.Sprintf("web-%d", i%3), t0+int64(i))
		require.Equalf(t, 1, got, "gauge %d arrived %d times; log:\n%s", i, got, log)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPipedMetricsArriveExactlyOnce(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	in := "cpu,host=web01 usage_idle=99.5,usage_user=0.5 1700000000000000000\n" +
		"mem,host=web01 value=42i 1700000001000000000\n" +
		"disk,host=db\\ 1 free=7.25 1700000002000000000\n"
	res := runWith(context.Background(), t, strings.NewReader(in), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)

	type key struct {
		name, source string
		value        float64
		time         int64
	}
	gauges := s.Gauges()
	got := make([]key, 0, len(gauges))
	for _, g := range gauges {
		got = append(got, key{g.Name, g.Source, g.Value, g.MeasureTime})
	}
	require.ElementsMatch(t, []key{
		{"cpu.usage_idle", "web01", 99.5, 1700000000},
		{"cpu.usage_user", "web01", 0.5, 1700000000},
		{"mem", "web01", 42, 1700000001},
		{"disk.free", "db-1", 7.25, 1700000002},
	}, got)
}

func TestManyLinesAcrossBatches(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 2500)),
		"-config", conf, "-batch_size", "700")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Len(t, s.Gauges(), 2500)
	requireCPUOnce(t, s, 2500, res.stderr)
}

func TestOneMebibyteLine(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	long := fmt.Sprintf("big,host=h1 note=%q,value=7 %d\n", strings.Repeat("x", 1<<20), t0*1e9)
	in := cpuLines(0, 1) + long + cpuLines(1, 2)
	require.Greater(t, len(long), 1<<20)
	res := runWith(context.Background(), t, strings.NewReader(in), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Equal(t, 1, s.CountGauge("big", "h1", t0), res.stderr)
	requireCPUOnce(t, s, 3, res.stderr)
}

func TestOverlongLineIsSkipped(t *testing.T) {
	defer func(n int) { maxLineBytes = n }(maxLineBytes)
	maxLineBytes = 200 << 10
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	long := fmt.Sprintf("big,host=h1 note=%q,value=7 %d\n", strings.Repeat("x", 300<<10), t0*1e9)
	in := cpuLines(0, 1) + long + cpuLines(1, 2)
	res := runWith(context.Background(), t, strings.NewReader(in), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stderr.String(), "line 2: longer than 204800 bytes, skipped")
	require.Zero(t, s.CountGauge("big", "h1", t0))
	requireCPUOnce(t, s, 3, res.stderr)
}

func TestLastLineWithoutNewline(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	in := strings.TrimSuffix(cpuLines(0, 2), "\n")
	res := runWith(context.Background(), t, strings.NewReader(in), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	requireCPUOnce(t, s, 2, res.stderr)
}

func TestMalformedLineIsReportedAndSkipped(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	in := cpuLines(0, 1) + "cpu,host=web usage_idle=\n" + "\n# a comment\n" + cpuLines(1, 2) + "garbage\r\n" + cpuLines(3, 1)
	res := runWith(context.Background(), t, strings.NewReader(in), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	requireCPUOnce(t, s, 4, res.stderr)
	require.Len(t, s.Gauges(), 4)
	log := res.stderr.String()
	require.Contains(t, log, "line 2: metric parse error")
	require.Contains(t, log, "line 7: metric parse error")
	require.Equal(t, 2, strings.Count(log, "parse error"), log)
}

func TestUint64Survives(t *testing.T) {
	p, err := newLineParser()
	require.NoError(t, err)
	ms, err := p.parse([]byte("c,host=h n=18446744073709551615u,small=3u 1700000000000000000"))
	require.NoError(t, err)
	require.Len(t, ms, 1)
	v, ok := ms[0].GetField("n")
	require.True(t, ok)
	require.Equal(t, uint64(18446744073709551615), v)

	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	res := runWith(context.Background(), t,
		strings.NewReader("c,host=h n=18446744073709551615u,small=3u 1700000000000000000\n"), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	got := map[string]float64{}
	for _, g := range s.Gauges() {
		got[g.Name] = g.Value
	}
	// As int64 the line would not parse at all.
	require.Equal(t, map[string]float64{"c.n": 18446744073709551615.0, "c.small": 3}, got)
}

func TestUnknownConfigKeyIsRejected(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "  api_tokn = \"typo\"", "")
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 1)), "-config", conf)
	require.Equal(t, exitConfig, res.code)
	require.Contains(t, res.stderr.String(), "api_tokn")
	require.Contains(t, res.stderr.String(), "not used")
	require.Empty(t, s.Requests())
}

func TestConfigErrors(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	block := fmt.Sprintf("[[outputs.librato]]\n  api_user = %q\n  api_token = %q\n  api_url = %q\n", testUser, testToken, s.LegacyURL())
	cases := []struct {
		name, body, want string
	}{
		{"two outputs", block + block, "exactly one"},
		{"no output", "[agent]\n  debug = true\n", "exactly one"},
		{"other output", "[[outputs.file]]\n  files = [\"stdout\"]\n", "output: file"},
		{"input", block + "[[inputs.cpu]]\n", "input: cpu"},
		{"no token", fmt.Sprintf("[[outputs.librato]]\n  api_user = %q\n  api_url = %q\n", testUser, s.LegacyURL()), "api_token"},
		{"bad value", block + "  concurrent_writes = 0\n", "concurrent_writes"},
		{"unknown agent key", "[agent]\n  flush_intervall = \"1s\"\n" + block, "flush_intervall"},
		{"not toml", "[[outputs.librato]\n", "parsing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runWith(context.Background(), t, strings.NewReader(""), "-config", write("c.conf", tc.body))
			require.Equal(t, exitConfig, res.code, res.stderr)
			require.Contains(t, res.stderr.String(), tc.want)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		res := runWith(context.Background(), t, strings.NewReader(""), "-config", filepath.Join(dir, "nope.conf"))
		require.Equal(t, exitConfig, res.code)
		require.Contains(t, res.stderr.String(), "nope.conf")
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{}, {"-config", "x", "extra"}, {"-config", "x", "-flush_interval", "0s"}, {"-bogus"}} {
			res := runWith(context.Background(), t, strings.NewReader(""), args...)
			require.Equal(t, exitUsage, res.code, "%q: %s", args, res.stderr)
		}
	})
	require.Empty(t, s.Requests())
}

func TestTokenFromEnvironment(t *testing.T) {
	t.Setenv("LIBRATO_TOKEN", testToken)
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), "${LIBRATO_TOKEN}", "", "")
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 3)), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	requireCPUOnce(t, s, 3, res.stderr)
	require.NotContains(t, res.stderr.String(), testToken)
}

func TestDeprecatedOptionWarns(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "  source_tag = \"host\"", "")
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 2)), "-config", conf)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stderr.String(), "source_tag")
	require.Contains(t, res.stderr.String(), "deprecated")
	requireCPUOnce(t, s, 2, res.stderr)
}

func TestFailingAPIRetriesUntilDelivered(t *testing.T) {
	var mu sync.Mutex
	failed := 0
	s := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		mu.Lock()
		defer mu.Unlock()
		if failed < 6 {
			failed++
			return fakelibrato.Action{Status: 503}
		}
		return fakelibrato.Action{}
	}})
	// One request per flush: with several requests in flight, a request
	// that fails for good cancels the others, and one Librato already stored
	// is then sent again (a duplicate the plugin cannot see).
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resc := make(chan result, 1)
	go func() { resc <- runWith(ctx, t, pr, "-config", conf, "-flush_interval", "100ms") }()

	_, err := io.WriteString(pw, cpuLines(0, 50))
	require.NoError(t, err)
	waitFor(t, "50 gauges", func() bool { return len(s.Gauges()) >= 50 })
	require.NoError(t, pw.Close())
	res := <-resc
	require.Equal(t, exitOK, res.code, res.stderr)
	requireCPUOnce(t, s, 50, res.stderr)
	require.Len(t, s.Gauges(), 50)
	mu.Lock()
	require.Equal(t, 6, failed)
	mu.Unlock()
}

// A small buffer and an API that is down for a while: reading must pause
// instead of overflowing the buffer, and nothing may be lost.
func TestBackpressureLosesNothing(t *testing.T) {
	var mu sync.Mutex
	down := true
	s := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return fakelibrato.Action{Status: 503}
		}
		return fakelibrato.Action{}
	}})
	conf := writeConf(t, s.LegacyURL(), testToken, "  metric_buffer_limit = 20\n  metric_batch_size = 5", "")
	pr, pw := io.Pipe()
	resc := make(chan result, 1)
	go func() { resc <- runWith(context.Background(), t, pr, "-config", conf, "-flush_interval", "50ms") }()

	written := make(chan error, 1)
	go func() {
		_, err := io.WriteString(pw, cpuLines(0, 2000))
		if err == nil {
			err = pw.Close()
		}
		written <- err
	}()
	// The writer must block: 20 in the buffer + the queue + the pipe.
	waitFor(t, "some failed requests", func() bool { return len(s.Requests()) >= 3 })
	select {
	case err := <-written:
		t.Fatalf("writer finished while the API was down (err %v): no backpressure", err)
	default:
	}
	mu.Lock()
	down = false
	mu.Unlock()
	require.NoError(t, <-written)
	res := <-resc
	require.Equal(t, exitOK, res.code, res.stderr)
	require.NotContains(t, res.stderr.String(), "overflow")
	require.Len(t, s.Gauges(), 2000)
	requireCPUOnce(t, s, 2000, res.stderr)
}

func TestBatchSizeTriggersEarlyFlush(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "  flush_interval = \"1h\"")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resc := make(chan result, 1)
	go func() { resc <- runWith(ctx, t, pr, "-config", conf, "-batch_size", "4") }()

	_, err := io.WriteString(pw, cpuLines(0, 4))
	require.NoError(t, err)
	waitFor(t, "a batch flushed before the 1h tick", func() bool { return len(s.Gauges()) == 4 })
	require.NoError(t, pw.Close())
	res := <-resc
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stderr.String(), "flush_interval=1h0m0s")
}

func TestCancelMidStreamFlushesEverythingRead(t *testing.T) {
	s := newFake(t, fakelibrato.Options{Latency: 50 * time.Millisecond})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	resc := make(chan result, 1)
	go func() { resc <- runWith(ctx, t, pr, "-config", conf, "-flush_interval", "1h") }()

	// io.Pipe writes return only once the reader took the data: all of it
	// has been read when the cancel comes. stdin stays open.
	_, err := io.WriteString(pw, cpuLines(0, 300))
	require.NoError(t, err)
	cancel()
	res := <-resc
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Len(t, s.Gauges(), 300)
	requireCPUOnce(t, s, 300, res.stderr)
}

func TestShutdownTimeoutReportsLoss(t *testing.T) {
	s := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: 503}
	}})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	start := time.Now()
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 7)),
		"-config", conf, "-shutdown_timeout", "1s")
	require.Equal(t, exitLostData, res.code, res.stderr)
	require.Less(t, time.Since(start), 20*time.Second)
	require.Contains(t, res.stderr.String(), "7 metric(s)")
	require.Empty(t, s.Gauges())
}
