//go:build integration

// Package integration runs the real binaries (a custom Telegraf with this
// module as outputs.librato, a stock Telegraf with outputs.execd, and
// librato-execd) against the fake Librato API on 127.0.0.1.
//
//	go test -tags integration -count=1 -timeout 60m ./integration/...
//
// Missing binaries are built with scripts/build-telegraf.sh and
// scripts/build-execd.sh (a minute or two the first time); TELEGRAF_LIBRATO,
// TELEGRAF_EXECD and LIBRATO_EXECD point at prebuilt ones instead.
// TestConfigBuild always builds, with --config, for each release in
// TELEGRAF_VERSIONS (default v1.39.3 and v1.40.1; two to six minutes each),
// and TestExecdAsReadme always runs go install, as a user would.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

const (
	apiUser  = "agent@example.com"
	apiToken = "integration-s3cr3t"

	// runTimeout bounds one --once run; builds and runs share a 2-core
	// machine with other work, so it is generous.
	runTimeout = 2 * time.Minute
)

var buildMu sync.Mutex

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(wd) // tests run in <root>/integration
}

// binary returns the path of a binary: $env if set, else build/<name>,
// built by script when missing.
func binary(t *testing.T, env, name, script string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		abs, err := filepath.Abs(p)
		require.NoError(t, err)
		require.FileExists(t, abs, "%s", env)
		return abs
	}
	root := repoRoot(t)
	path := filepath.Join(root, "build", name)
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	t.Logf("building %s with %s (slow the first time)", name, script)
	start := time.Now()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", script))
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s failed:\n%s", script, out)
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	require.FileExists(t, path)
	return path
}

func telegrafLibrato(t *testing.T) string {
	return binary(t, "TELEGRAF_LIBRATO", "telegraf-librato", "build-telegraf.sh")
}

func telegrafExecd(t *testing.T) string {
	return binary(t, "TELEGRAF_EXECD", "telegraf-execd", "build-execd.sh")
}

func libratoExecd(t *testing.T) string {
	return binary(t, "LIBRATO_EXECD", "librato-execd", "build-execd.sh")
}

func newFake(t *testing.T, opts fakelibrato.Options) *fakelibrato.Server {
	t.Helper()
	opts.User, opts.Token = apiUser, apiToken
	s := fakelibrato.New(opts)
	t.Cleanup(s.Close)
	return s
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	require.NoError(t, err)
	require.FileExists(t, p)
	return p
}

// writeFile renders a text/template with data into dir/name.
func writeFile(t *testing.T, dir, name, tmpl string, data any) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, template.Must(template.New(name).Parse(tmpl)).Execute(&b, data))
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o600))
	return p
}

// syncBuffer collects a process's output safely while it runs.
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

type runResult struct {
	code           int
	stdout, stderr string
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runOnce runs a command to completion (bounded by runTimeout), with env
// added to the test's environment.
func runOnce(t *testing.T, env []string, name string, args ...string) runResult {
	t.Helper()
	return runWithEnv(t, append(os.Environ(), env...), name, args...)
}

// runWithEnv is runOnce with exactly the environment env.
func runWithEnv(t *testing.T, env []string, name string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("running %s: %v\n%s", name, err, res)
	}
	require.NoError(t, ctx.Err(), "%s did not finish within %s\n%s", name, runTimeout, res)
	return res
}

// killProcess is for cleanups: a process that already exited is fine.
func killProcess(t *testing.T, p *os.Process) {
	t.Helper()
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("killing pid %d: %v", p.Pid, err)
	}
}

// killGroup is for cleanups: SIGKILL to a process group; a group that is
// gone already is fine.
func killGroup(t *testing.T, pgid int) {
	t.Helper()
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Errorf("killing process group %d: %v", pgid, err)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// eventually polls cond every 50 ms until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gauge is what the legacy assertions compare.
type gauge struct {
	Name, Source string
	Value        float64
	MeasureTime  int64
}

func (g gauge) String() string {
	return fmt.Sprintf("%s source=%s value=%g time=%d", g.Name, g.Source, g.Value, g.MeasureTime)
}

func gaugesOf(s *fakelibrato.Server) []gauge {
	gauges := s.Gauges()
	out := make([]gauge, 0, len(gauges))
	for _, g := range gauges {
		out = append(out, gauge{g.Name, g.Source, g.Value, g.MeasureTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// fixtureGauges is what testdata/metrics.lp must produce on the legacy API
// with the default template "host": strings are skipped and the metric
// without a host tag is dropped (omit_hostname = true in the configs).
var fixtureGauges = []gauge{
	{"cpu.usage_idle", "web01", 98.5, 1700000000},
	{"cpu.usage_user", "web01", 1.25, 1700000000},
	{"mem.used_percent", "web01", 42.5, 1700000000},
	{"mem.available", "web01", 8123456789, 1700000000},
	{"disk.free", "db-1", 100, 1700000010},
	{"net.bytes_recv", "web01", 12345, 1700000020},
	{"net.up", "web01", 1, 1700000020},
	{"swap", "web01", 0.5, 1700000030},
}

// requireExactGauges checks the fake holds exactly want, each once.
func requireExactGauges(t *testing.T, s *fakelibrato.Server, want []gauge, log fmt.Stringer) {
	t.Helper()
	got := gaugesOf(s)
	exp := append([]gauge(nil), want...)
	sort.Slice(exp, func(i, j int) bool { return exp[i].String() < exp[j].String() })
	require.Equal(t, joinLines(exp), joinLines(got), "gauges stored by the fake API\n%s", log)
}

func joinLines[T fmt.Stringer](xs []T) string {
	var b strings.Builder
	for _, x := range xs {
		b.WriteString(x.String())
		b.WriteByte('\n')
	}
	return b.String()
}
