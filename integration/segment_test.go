//go:build integration

package integration

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestSegmentRecipe runs testdata/segment.conf unchanged (it takes its
// addresses and credentials from the environment): Segment track events
// POSTed to inputs.http_listener_v2 become gauges named after the event.
func TestSegmentRecipe(t *testing.T) {
	bin := telegrafLibrato(t)
	s := newFake(t, fakelibrato.Options{})
	listen := freeAddr(t)

	cmd := exec.Command(bin, "--config", fixture(t, "segment.conf"))
	cmd.Env = append(os.Environ(),
		"SEGMENT_LISTEN="+listen,
		"LIBRATO_USER="+apiUser,
		"LIBRATO_TOKEN="+apiToken,
		"LIBRATO_API_URL="+s.LegacyURL(),
	)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			killProcess(t, cmd.Process)
			<-exited
		}
	})

	// Wait for the listener (the agent starts in well under a second, but
	// the machine may be busy).
	eventually(t, time.Minute, "the http listener on "+listen, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("agent exited early: %v\n%s", err, &stderr)
		default:
		}
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, &stderr)

	events := []string{
		// The Segment track event of the recipe.
		`{"event":"Signed Up","properties":{"value":3},"context":{"Librato":{"source":"web-7"}},"timestamp":"2026-11-22T10:00:00Z"}`,
		// No context.Librato.source, no properties.value.
		`{"type":"track","event":"Page Viewed","properties":{"path":"/"},"context":{"ip":"192.0.2.1"},"timestamp":"2026-11-22T10:01:00.250Z"}`,
		// An empty Librato context: the event name is the source.
		`{"type":"track","event":"Order Completed","properties":{"value":12.5},"context":{"Librato":{}},"timestamp":"2026-11-22T10:02:00Z"}`,
		// Not a track event: dropped.
		`{"type":"identify","userId":"u-1","traits":{"plan":"pro"},"timestamp":"2026-11-22T10:03:00Z"}`,
	}
	for _, ev := range events {
		resp, err := http.Post("http://"+listen+"/segment", "application/json", strings.NewReader(ev))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "POST %s\n%s", ev, &stderr)
	}

	ts := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return tm.Unix()
	}
	want := []gauge{
		{"Signed-Up", "web-7", 3, ts("2026-11-22T10:00:00Z")},
		{"Page-Viewed", "Page-Viewed", 1, ts("2026-11-22T10:01:00Z")},
		{"Order-Completed", "Order-Completed", 12.5, ts("2026-11-22T10:02:00Z")},
	}
	// flush_interval is 10s in the recipe.
	eventually(t, 90*time.Second, "the gauges at the fake API", func() bool {
		return len(s.Gauges()) >= len(want)
	}, &stderr)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		stopped = true
		require.NoError(t, err, "agent exit after SIGTERM\n%s", &stderr)
	case <-time.After(time.Minute):
		t.Fatalf("agent did not stop after SIGTERM\n%s", &stderr)
	}
	requireExactGauges(t, s, want, &stderr)
	require.NotContains(t, stderr.String(), "E! ", "errors in the agent log")
}
