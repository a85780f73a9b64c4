package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is stdout shared by the server goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe points the plugin, loaded from the config -serve prints, at the
// served API: every stored gauge and every rejection is printed.
func TestServe(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-serve", addr}, &stdout, &stderr) }()
	t.Cleanup(cancel)
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "api_url = ") }, 10*time.Second, 10*time.Millisecond)

	// The printed section, as a user would paste it into telegraf.conf.
	banner := stdout.String()
	section := banner[strings.Index(banner, "[[outputs.librato]]"):]
	section = section[:strings.Index(section, "  ## or")]
	require.Contains(t, section, `api_url = "http://`+addr+`/v1/metrics"`)
	ro, err := loadOutput(section)
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second)
	require.NoError(t, deliver(ro, []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "web01"}, map[string]any{"usage_idle": 98.5}, now),
		metric.New("old", map[string]string{"host": "web01"}, map[string]any{"value": 1.0}, now.Add(-2*time.Hour)),
	}))
	cancel()
	require.NoError(t, <-done)

	out := stdout.String()
	require.Regexp(t, `POST /v1/metrics -> 200: 1 stored\n  cpu\.usage_idle  web01  98\.5  `+now.UTC().Format(time.RFC3339), out)
	require.Regexp(t, `POST /v1/metrics -> 400 REJECTED: \{"errors":\{"params":\{"measure_time":\["is too far in the past"\]`, out)
	require.Regexp(t, `Stopped after \d+ requests: 1 measurements arrived, 1 values stored, `+
		`0 merged into existing values; \d+ requests rejected; 0 -check probes\.`, out)
	require.Empty(t, stderr.String())
}

func TestServeWrongCredentials(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-serve", addr, "-user", "me@example.com", "-token", "x"}, &stdout, &stdout)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "api_url = ") }, 10*time.Second, 10*time.Millisecond)

	ro, err := loadOutput(configTOML(pluginSettings{url: "http://" + addr + "/v1/metrics", user: "me@example.com", token: "y"}))
	require.NoError(t, err)
	err = deliver(ro, []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "web01"}, map[string]any{"usage_idle": 98.5}, time.Now()),
	})
	require.Error(t, err)
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, stdout.String(), "-> 401 REJECTED: ")
	require.Contains(t, stdout.String(), "(api_user/api_token do not match the ones printed above)")
}

func TestServeFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-serve", "127.0.0.1:0", "-api", "tagged"}, "-api: not used with -serve"},
		{[]string{"-token", "x"}, "-token: only used with -serve"},
		{[]string{"-serve", "127.0.0.1:0", "-legacy-account", "-api", "auto"}, "-api: not used with -serve"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			require.ErrorIs(t, err, errUsage)
			require.Contains(t, stderr.String(), tt.want)
		})
	}
	var stdout bytes.Buffer
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	err = run(t.Context(), []string{"-serve", l.Addr().String()}, &stdout, &stdout)
	require.ErrorContains(t, err, "starting the API")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}
