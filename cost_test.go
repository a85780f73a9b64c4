package librato

import (
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/models"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
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
