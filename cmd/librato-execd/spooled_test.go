package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// helperEnv makes the test binary run main() instead of the tests, so a test
// can kill -9 a real librato-execd process.
const helperEnv = "LIBRATO_EXECD_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		main()
		return
	}
	// The tests choose their spool themselves; one from the environment
	// (a CI running under systemd) must not leak in.
	os.Unsetenv(stateDirEnv)
	os.Exit(m.Run())
}

// switchable is a fake's fault hook that answers 503 while down.
type switchable struct {
	mu   sync.Mutex
	down bool
}

func (s *switchable) set(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *switchable) fault(int, *fakelibrato.Received) fakelibrato.Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return fakelibrato.Action{Status: 503}
	}
	return fakelibrato.Action{}
}

// TestSpoolRestartResumes: the endpoint is down when librato-execd stops
// (stdin closed, or a signal); what it read waits in the spool, and the next
// start, with the endpoint back and nothing new on stdin, delivers all of
// it exactly once.
func TestSpoolRestartResumes(t *testing.T) {
	for _, stop := range []string{"eof", "signal"} {
		t.Run(stop, func(t *testing.T) {
			api := &switchable{down: true}
			s := newFake(t, fakelibrato.Options{Fault: api.fault})
			conf := writeConf(t, s.LegacyURL(), testToken, "", "")
			dir := filepath.Join(t.TempDir(), "spool")
			args := []string{"-config", conf, "-spool_dir", dir, "-shutdown_timeout", "1s", "-batch_size", "30"}

			var res result
			if stop == "eof" {
				res = runWith(context.Background(), t, strings.NewReader(cpuLines(0, 100)), args...)
			} else {
				// io.Pipe: the write returns once the lines were read; the
				// cancel comes after, stdin stays open.
				pr, pw := io.Pipe()
				defer pw.Close()
				ctx, cancel := context.WithCancel(context.Background())
				resc := make(chan result, 1)
				go func() { resc <- runWith(ctx, t, pr, append(args, "-flush_interval", "1h")...) }()
				_, err := io.WriteString(pw, cpuLines(0, 100))
				require.NoError(t, err)
				cancel()
				res = <-resc
			}
			require.Equal(t, exitOK, res.code, res.stderr)
			require.Contains(t, res.stderr.String(), "100 metric(s) not yet delivered are kept in the spool")
			require.Empty(t, s.Gauges())

			api.set(false)
			res = runWith(context.Background(), t, strings.NewReader(""), args...)
			require.Equal(t, exitOK, res.code, res.stderr)
			require.Contains(t, res.stderr.String(), "100 metric(s) from before the restart are sent first")
			require.NotContains(t, res.stderr.String(), "kept in the spool")
			requireCPUOnce(t, s, 100, res.stderr)
			require.Len(t, s.Gauges(), 100)
			require.Empty(t, segments(t, dir), "everything delivered: no segment left")
		})
	}
}

// TestSpoolKill9Resumes kills a real librato-execd process with SIGKILL
// while the endpoint is down, after it tried to send what it read: the
// next start delivers all of it.
func TestSpoolKill9Resumes(t *testing.T) {
	api := &switchable{down: true}
	s := newFake(t, fakelibrato.Options{Fault: api.fault})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	dir := filepath.Join(t.TempDir(), "spool")

	cmd := exec.Command(os.Args[0], "-config", conf, "-spool_dir", dir, "-flush_interval", "100ms", "-batch_size", "40")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("killing librato-execd: %v", err)
		}
	})

	_, err = io.WriteString(stdin, cpuLines(0, 100))
	require.NoError(t, err)
	// A failed Write shows the lines were spooled and handed to the plugin.
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Error writing to outputs.librato") {
			break
		}
	}
	require.Contains(t, log.String(), "Error writing", "librato-execd exited early:\n%s", &log)
	go func() {
		// Drained so librato-execd never blocks on a full pipe; the copy
		// ends with the process.
		if _, err := io.Copy(io.Discard, stderr); err != nil {
			return
		}
	}()
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, cmd.Wait())
	require.Empty(t, s.Gauges())

	api.set(false)
	res := runWith(context.Background(), t, strings.NewReader(""), "-config", conf, "-spool_dir", dir)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stderr.String(), "100 metric(s) from before the restart are sent first")
	requireCPUOnce(t, s, 100, res.stderr)
	require.Len(t, s.Gauges(), 100)
}

// A metric the output's filters drop is settled too: otherwise the spool
// would keep it, and everything after it, for ever.
func TestSpoolFilteredMetricsAreSettled(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "  namepass = [\"cpu\"]", "")
	dir := t.TempDir()
	in := cpuLines(0, 2) + "mem,host=web-0 used=1 1700000000000000000\n" + cpuLines(2, 2)
	res := runWith(context.Background(), t, strings.NewReader(in), "-config", conf, "-spool_dir", dir)
	require.Equal(t, exitOK, res.code, res.stderr)
	requireCPUOnce(t, s, 4, res.stderr)
	require.Len(t, s.Gauges(), 4)
	require.NotContains(t, res.stderr.String(), "kept in the spool")
	require.Empty(t, segments(t, dir))
}

func TestSpoolFromStateDirectory(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	state := t.TempDir()
	t.Setenv(stateDirEnv, state)
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 3)), "-config", conf, "-debug")
	require.Equal(t, exitOK, res.code, res.stderr)
	requireCPUOnce(t, s, 3, res.stderr)
	dir := filepath.Join(state, "librato-execd", "librato-plugin")
	require.Contains(t, res.stderr.String(), "Spool "+dir)
	require.FileExists(t, filepath.Join(dir, headFile))
	require.NotContains(t, res.stderr.String(), "No spool")
}

func TestNoSpoolWarns(t *testing.T) {
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	t.Setenv(stateDirEnv, t.TempDir())
	res := runWith(context.Background(), t, strings.NewReader(cpuLines(0, 2)), "-config", conf, "-spool_dir", spoolOff)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stderr.String(), "No spool (-spool_dir): metrics not yet delivered are lost")
	requireCPUOnce(t, s, 2, res.stderr)
}

func TestSpoolFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-config", "x", "-spool_dir", ""},
		{"-config", "x", "-spool_max_size", "1KB"},
		{"-config", "x", "-spool_max_size", "lots"},
	} {
		res := runWith(context.Background(), t, strings.NewReader(""), args...)
		require.Equal(t, exitUsage, res.code, "%q: %s", args, res.stderr)
	}
	s := newFake(t, fakelibrato.Options{})
	conf := writeConf(t, s.LegacyURL(), testToken, "", "")
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	res := runWith(context.Background(), t, strings.NewReader(""), "-config", conf, "-spool_dir", filepath.Join(blocker, "spool"))
	require.Equal(t, exitConfig, res.code, res.stderr)
	require.Contains(t, res.stderr.String(), "creating spool directory")
}
