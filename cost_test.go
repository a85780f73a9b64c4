package librato

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
	"github.com/seed-d22a899f/librato/internal/testclock"
)

// The cost of safety through Telegraf's RunningOutput, whose flush stops at
// the first Write that fails: dense poison and a proxy's body limit. Each
// case logs one row:
//
//	go test -count=1 -run 'CostThroughTelegraf' -v . | grep '| '

// telegrafFlushes runs RunningOutput flushes with Telegraf's default
// metric_batch_size (1000) until the buffer is empty, at most limit, and
// returns the requests of each.
func telegrafFlushes(t *testing.T, l *Librato, fake *fakelibrato.Server, metrics []telegraf.Metric, limit int) []int {
	t.Helper()
	out, err := models.NewRunningOutput(l, &models.OutputConfig{Name: "librato"}, 1000, 100_000)
	require.NoError(t, err)
	addAll(out, metrics)
	perFlush := make([]int, 0, limit)
	for range limit {
		before := len(fake.Requests())
		err := out.Write()
		perFlush = append(perFlush, len(fake.Requests())-before)
		if err == nil && out.BufferLength() == 0 {
			return perFlush
		}
	}
	t.Fatalf("buffer still holds %d metrics after %d flushes (requests per flush %v)", out.BufferLength(), limit, perFlush)
	return nil
}

// TestDensePoisonCostThroughTelegraf: one bad measurement per 300 among
// 100,000, the error naming its metric as Librato does. Every good one
// arrives once and every bad one is dropped with proof within three flushes.
func TestDensePoisonCostThroughTelegraf(t *testing.T) {
	metrics, want := workload(33_334)   // 100,002 gauges
	rng := rand.New(rand.NewPCG(15, 4)) // a fixed seed: the same poison every run
	bad := map[fakeKey]bool{}
	for _, i := range rng.Perm(len(want))[:len(want)/300] {
		bad[want[i]] = true
	}
	fake := newFake(t, fakelibrato.Options{Fault: rejectMeasurements(bad, true)})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })

	perFlush := telegrafFlushes(t, l, fake, metrics, 3)

	var good []fakeKey
	for _, k := range want {
		if !bad[k] {
			good = append(good, k)
		}
	}
	requireExactlyOnce(t, fake, good)
	require.Equal(t, int64(len(bad)), l.stats.dropped[reasonRejected].Get())
	t.Logf("requests per flush %v", perFlush)
	reportRow(t, fake, len(logger.Messages()), l.stats.dropped[reasonRejected].Get(), 0)
}

// TestBodyLimitCostThroughTelegraf: a proxy takes bodies up to 12,000
// bytes (a batch of 300 is about 22,000). The first flush learns it from
// one 413 per request in flight; the next flushes send no 413.
func TestBodyLimitCostThroughTelegraf(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{MaxBodyBytes: 12_000})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })

	const flushes = 3
	refused := make([]int, 0, flushes)
	all := make([]fakeKey, 0, flushes*30_000)
	for k := range flushes {
		metrics, want := workload(10_000)      // 30,000 gauges
		shift := -time.Duration(k) * time.Hour // new keys each flush
		for _, m := range metrics {
			m.SetTime(m.Time().Add(shift))
		}
		for _, w := range want {
			all = append(all, fakeKey{w.name, w.source, w.time + int64(shift/time.Second)})
		}
		before := len(fake.Requests())
		telegrafFlushes(t, l, fake, metrics, 1)
		n := 0
		for _, r := range fake.Requests()[before:] {
			if r.Status == http.StatusRequestEntityTooLarge {
				n++
			}
		}
		refused = append(refused, n)
		t.Logf("flush: %d requests for 100 batches of 300, %d answered 413", len(fake.Requests())-before, n)
	}
	require.LessOrEqual(t, refused[0], l.ConcurrentWrites, "one 413 per request in flight")
	require.Equal(t, []int{0, 0}, refused[1:], "later flushes are cut at the learned limit")
	requireExactlyOnce(t, fake, all)
	reportRow(t, fake, len(logger.Messages()), l.stats.dropped[reasonRejected].Get(), 0)
}

// TestBodyLimitOutageCostThroughTelegraf: after a healthy flush, a proxy
// answers 413 to everything for three flushes, then is healthy again. A
// 413 to a body of a size the endpoint took within the minute is not a
// limit: each batch costs one request per flush, nothing is dropped, and
// the flush after the outage delivers everything at full size.
func TestBodyLimitOutageCostThroughTelegraf(t *testing.T) {
	var outage atomic.Bool
	fake := newFake(t, fakelibrato.Options{Fault: outageFault(&outage, fakelibrato.Action{
		Status: http.StatusRequestEntityTooLarge, Body: []byte("<html><body>413 Request Entity Too Large</body></html>")})})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
	out, err := models.NewRunningOutput(l, &models.OutputConfig{Name: "librato"}, 1000, 100_000)
	require.NoError(t, err)

	const flushes = 5
	perFlush := make([]int, 0, flushes)
	all := make([]fakeKey, 0, flushes*6000)
	for k := range flushes {
		metrics, want := workload(2000) // 6,000 gauges, 20 batches
		shift := -time.Duration(k) * time.Hour
		for _, m := range metrics {
			m.SetTime(m.Time().Add(shift))
		}
		for _, w := range want {
			all = append(all, fakeKey{w.name, w.source, w.time + int64(shift/time.Second)})
		}
		addAll(out, metrics)
		outage.Store(k >= 1 && k <= 3)
		before := len(fake.Requests())
		err := out.Write()
		perFlush = append(perFlush, len(fake.Requests())-before)
		if outage.Load() {
			require.Error(t, err)
			// Telegraf's flush stops at the first failed Write, of 10
			// batches (metric_batch_size 1000): one request per batch.
			require.LessOrEqual(t, perFlush[k], 10, "flush %d", k)
		} else {
			require.NoError(t, err)
		}
	}
	require.Zero(t, out.BufferLength())
	require.Zero(t, l.stats.dropped[reasonRejected].Get())
	requireExactlyOnce(t, fake, all)
	t.Logf("requests per flush %v", perFlush)
	reportRow(t, fake, len(logger.Messages()), 0, 0)
}

// TestBacklogCostThroughTelegraf: after a long outage, Telegraf's buffer
// holds 1,000 metrics (3,000 gauges) that Librato finds too far in the
// past. Nothing in the Write is accepted, so every drop rests on control
// requests; the Write goes on in rounds while its drops prove progress,
// and the backlog clears in a flush or two, each gauge on its own proof.
// An endpoint that refuses everything, the control included, drops
// nothing, and each flush costs a bounded number of requests.
//
// The plugin's clock and the fake's stand still at testclock.Epoch, and
// every gauge has its own fixed time: nothing depends on the real date or
// on when a flush happens to run.
func TestBacklogCostThroughTelegraf(t *testing.T) {
	const metrics, gauges = 1000, 3000
	tooOld := fakelibrato.Action{Status: http.StatusBadRequest,
		Body: []byte(`{"errors":{"params":{"measure_time":["is too far in the past"]}}}`)}
	cases := []struct {
		name    string
		fault   func(int, *fakelibrato.Received) fakelibrato.Action // nil: the fake's own time rule
		flushes int
		cleared bool
		// maxRequests bounds each flush when nothing is cleared: the
		// batches, the split budget's start and one control.
		maxRequests int
	}{
		{name: "too far in the past, the control accepted", flushes: 3, cleared: true},
		{name: "everything refused, the control too", flushes: 3,
			fault:       func(int, *fakelibrato.Received) fakelibrato.Action { return tooOld },
			maxRequests: gauges/300 + delivery.ExtraRequests + delivery.ExtraRequestsPerBatch*gauges/300 + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			epoch := testclock.Epoch()
			fake := newFake(t, fakelibrato.Options{MaxPast: time.Hour, Now: func() time.Time { return epoch }, Fault: tc.fault})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
				l.Log = logger
				l.clock = &frozenClock{now: epoch}
			})
			out, err := models.NewRunningOutput(l, &models.OutputConfig{Name: "librato"}, 1000, 100_000)
			require.NoError(t, err)
			backlog := epoch.Add(-2 * time.Hour)
			for i := range metrics {
				ts := backlog.Add(-time.Duration(i/20) * time.Second) // 20 hosts per second: distinct keys
				out.AddMetric(metric.New("cpu", map[string]string{"host": fmt.Sprintf("host%02d", i%20)},
					map[string]any{"idle": 1.0, "user": 2.0, "busy": 3.0}, ts))
			}

			perFlush := make([]int, 0, tc.flushes)
			for k := range tc.flushes {
				before := len(fake.Requests())
				err := out.Write()
				perFlush = append(perFlush, len(fake.Requests())-before)
				t.Logf("flush %d: %v", k+1, err)
				if err == nil && out.BufferLength() == 0 {
					break
				}
			}

			stored := 0
			for _, g := range fake.Gauges() {
				if g.Name != delivery.ControlName {
					stored++
				}
			}
			dropped := l.stats.dropped[reasonRejected].Get()
			t.Logf("| %s | %d requests (per flush %v) | %d delivered | %d dropped | %d controls | %d flush(es) | %d metrics left |",
				t.Name(), len(fake.Requests()), perFlush, stored, dropped, l.stats.controls.Get(), len(perFlush), out.BufferLength())
			require.Zero(t, stored, "nothing but controls is stored")
			if tc.cleared {
				require.Zero(t, out.BufferLength(), "the backlog clears")
				require.Equal(t, int64(gauges), dropped, "every gauge dropped on its own proof")
				return
			}
			require.Equal(t, metrics, out.BufferLength(), "everything stays buffered")
			require.Zero(t, dropped, "nothing dropped without an acceptance")
			for k, n := range perFlush {
				require.LessOrEqual(t, n, tc.maxRequests, "flush %d's requests", k+1)
			}
		})
	}
}

// frozenClock is a delivery.Clock that stands still unless a wait moves
// it, so the plugin's time is the fake's. It never reaches a real timer: a
// deadline still ahead can only end by cancellation.
type frozenClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *frozenClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *frozenClock) Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func (c *frozenClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return testclock.WithDeadline(ctx, c.Now(), t)
}
