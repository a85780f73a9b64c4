package librato

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// connCounter is a discarding API that counts the connections it has open.
type connCounter struct {
	*httptest.Server
	open atomic.Int64
}

func newConnCounter(t *testing.T) *connCounter {
	c := &connCounter{}
	c.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	c.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			c.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.open.Add(-1)
		}
	}
	c.Start()
	t.Cleanup(c.Close)
	return c
}

// Connect, Write and Close may come in any order, any number of times: a
// Write works after the last Connect and fails (keeping the metrics) before
// the first one or after a Close.
func TestLifecycleInAnyOrder(t *testing.T) {
	cases := []struct {
		name string
		ops  string // c = Connect, w = Write that delivers, x = Write that fails, q = Close
	}{
		{"usual", "cwq"},
		{"write first", "xcw"},
		{"close first", "qqcwq"},
		{"connect twice", "ccwcw"},
		{"write after close", "cwqx"},
		{"reconnect after close", "cqcwqq"},
		{"close twice", "cwqqx"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newConnCounter(t)
			l := unstarted()
			l.APIURL = api.URL + "/v1/metrics"
			require.NoError(t, l.Init())
			metrics, _ := workload(10)
			for i, op := range tc.ops {
				switch op {
				case 'c':
					require.NoError(t, l.Connect(), "op %d", i)
				case 'q':
					require.NoError(t, l.Close(), "op %d", i)
				case 'w':
					require.NoError(t, l.Write(metrics), "op %d", i)
				case 'x':
					require.ErrorContains(t, l.Write(metrics), "not connected", "op %d", i)
				}
			}
			if strings.HasSuffix(tc.ops, "q") || strings.HasSuffix(tc.ops, "x") {
				require.Eventually(t, func() bool { return api.open.Load() == 0 }, 5*time.Second, 10*time.Millisecond,
					"connections left open after Close")
			}
		})
	}
}

func TestLifecycleBeforeInit(t *testing.T) {
	l := unstarted()
	metrics, _ := workload(1)
	require.ErrorContains(t, l.Connect(), "not initialised")
	require.ErrorContains(t, l.Write(metrics), "not initialised")
	require.NoError(t, l.Close())
}

// Each Connect closes the connections of the client it replaces: five of
// them and a Close leave no connection and no goroutine behind.
func TestRepeatedConnectLeavesNothingOpen(t *testing.T) {
	api := newConnCounter(t)
	l := unstarted()
	l.APIURL = api.URL + "/v1/metrics"
	require.NoError(t, l.Init())
	metrics, _ := workload(1000) // 10 concurrent requests: 10 connections
	baseline := runtime.NumGoroutine()

	for range 5 {
		require.NoError(t, l.Connect())
		require.NoError(t, l.Write(metrics))
		require.Positive(t, api.open.Load())
	}
	require.NoError(t, l.Close())

	require.Eventually(t, func() bool { return api.open.Load() == 0 }, 5*time.Second, 10*time.Millisecond,
		"connections left open")
	// Polled here: require.Eventually runs its condition in a goroutine.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > baseline && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), baseline, "goroutines left behind")
}

// inFlight starts a Write of metrics and returns once the API has its
// first request, with the Write's result to come.
func inFlight(l *Librato, started <-chan struct{}, n int) (<-chan error, []fakeKey) {
	metrics, want := workload(n)
	done := make(chan error, 1)
	go func() { done <- l.Write(metrics) }()
	<-started
	return done, want
}

// slowFake answers after a while and signals its first request.
func slowFake(t *testing.T) (*fakelibrato.Server, <-chan struct{}) {
	started := make(chan struct{})
	var once sync.Once
	fake := newFake(t, fakelibrato.Options{Latency: 20 * time.Millisecond, Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		once.Do(func() { close(started) })
		return fakelibrato.Action{}
	}})
	return fake, started
}

// A Connect while a Write is in flight waits for it; the Write delivers
// everything once, and the next Write goes through the new client.
func TestConnectDuringWrite(t *testing.T) {
	fake, started := slowFake(t)
	l := newPlugin(t, fake.LegacyURL())
	done, want := inFlight(l, started, 2000)

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { require.NoError(t, l.Connect()) })
	}
	wg.Wait()
	require.NoError(t, <-done)
	requireExactlyOnce(t, fake, want)

	fake.Reset()
	metrics, want := workload(10)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
}

// A Close while a Write is in flight waits for it to finish, then closes
// the connections; a later Write fails until the next Connect.
func TestCloseDuringWrite(t *testing.T) {
	fake, started := slowFake(t)
	l := newPlugin(t, fake.LegacyURL())
	done, want := inFlight(l, started, 2000)

	require.NoError(t, l.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	default:
		t.Fatal("Close returned while the Write was in flight")
	}
	requireExactlyOnce(t, fake, want)

	metrics, _ := workload(10)
	require.ErrorContains(t, l.Write(metrics), "not connected")
	require.NoError(t, l.Connect())
	require.NoError(t, l.Write(metrics))
}

// Connects, Writes and Closes from many goroutines at once: the race
// detector's test.
func TestConcurrentLifecycle(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			metrics, _ := workload(50)
			for i := range 20 {
				switch (g + i) % 4 {
				case 0:
					require.NoError(t, l.Connect())
				case 1:
					require.NoError(t, l.Close())
				default:
					if err := l.Write(metrics); err != nil {
						require.ErrorContains(t, err, "not connected")
					}
				}
			}
		})
	}
	wg.Wait()
}
