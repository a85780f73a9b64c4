package librato

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/benchkit"
)

// What the plugin may hold between flushes, as the README documents it:
// the retained conversion buffers and one pooled request buffer per
// concurrent write, plus the two caches. The ledger holds nothing after a
// flush that succeeded. The idle connections' buffers exist before the
// measurement (heldAfter warms up first), so they are not part of it.
func buffersBudget(l *Librato) int64 {
	return retainedPoints*int64(unsafe.Sizeof(point{})) + retainedFields + maxCachedEntryBytes +
		int64(l.ConcurrentWrites)*maxPooledBody
}

func heldBudget(l *Librato) int64 { return 2*cacheBudgetBytes + buffersBudget(l) }

// heldAfter returns how much more heap is live once write has run and its
// garbage is collected: what the plugin keeps. l has already written one
// ordinary flush, so its connections and buffers exist before.
func heldAfter(t *testing.T, l *Librato, write func()) int64 {
	t.Helper()
	warm, _ := workload(100)
	require.NoError(t, l.Write(warm))
	before := liveHeap()
	write()
	after := liveHeap()
	runtime.KeepAlive(l) // its caches are what is measured
	return int64(after) - int64(before)
}

func liveHeap() uint64 {
	runtime.GC() //nolint:revive // measuring retained heap needs a collection
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// skipHeavy skips the retained-heap tests (a second or two each, and a few
// hundred MB) with -short, and under the race detector, where they take
// minutes and say nothing about races. Plain go test ./..., as CI runs it,
// runs them.
func skipHeavy(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("retained-heap test: run without -short and -race")
	}
}

func requireHeldWithin(t *testing.T, held, budget int64) {
	t.Helper()
	t.Logf("held %.1f MiB after GC (budget %.1f MiB)", float64(held)/(1<<20), float64(budget)/(1<<20))
	require.LessOrEqual(t, held, budget)
}

// Unique 64 KiB tag values (a request ID in a tag, say) are tag sets too
// large to cache: they are converted, sent and forgotten.
func TestHeldMemoryUniqueHugeTagValues(t *testing.T) {
	skipHeavy(t)
	sink := benchkit.NewSink()
	t.Cleanup(sink.Close)
	l := newPlugin(t, strings.Replace(sink.URL(), legacyPath, taggedPath, 1), func(l *Librato) { l.API = apiTagged })

	held := heldAfter(t, l, func() {
		filler := strings.Repeat("x", 64<<10)
		now := time.Now()
		metrics := make([]telegraf.Metric, 2000)
		for i := range metrics {
			value := strconv.Itoa(i) + filler[len(strconv.Itoa(i)):]
			metrics[i] = metric.New("req", map[string]string{"host": "web", "id": value}, map[string]any{"ms": float64(i)}, now)
		}
		sink.Reset()
		require.NoError(t, l.Write(metrics))
		require.Equal(t, int64(2000/300+1), sink.Requests(), "every measurement is sent")
	})
	requireHeldWithin(t, held, cacheBudgetBytes+buffersBudget(l)) // only the series cache could grow
}

// Measurements of string fields only produce nothing to name: a million
// unique ones must not fill the name cache.
func TestHeldMemoryUniqueStringOnlyMeasurements(t *testing.T) {
	skipHeavy(t)
	sink := benchkit.NewSink()
	t.Cleanup(sink.Close)
	l := newPlugin(t, sink.URL())

	held := heldAfter(t, l, func() {
		now := time.Now()
		metrics := make([]telegraf.Metric, 10_000)
		for i := range metrics {
			metrics[i] = metric.New("m", map[string]string{"host": "web"}, map[string]any{"status": "ok"}, now)
		}
		for n := 0; n < 1_000_000; n += len(metrics) {
			for i, m := range metrics {
				m.SetName("event_" + strconv.Itoa(n+i))
			}
			require.NoError(t, l.Write(metrics))
		}
	})
	requireHeldWithin(t, held, cacheBudgetBytes+buffersBudget(l)) // only the name cache could grow
	require.Nil(t, l.conv[0].names.fields("event_999999"), "nothing to name, nothing cached")
}

// One measurement whose field names never repeat fills its own map of the
// name cache, which starts over at the budget like any other.
func TestHeldMemoryEverChangingFieldNames(t *testing.T) {
	skipHeavy(t)
	sink := benchkit.NewSink()
	t.Cleanup(sink.Close)
	l := newPlugin(t, sink.URL())

	held := heldAfter(t, l, func() {
		now := time.Now()
		for batch := range 10 {
			metrics := make([]telegraf.Metric, 30)
			for i := range metrics {
				fields := make(map[string]any, 1000)
				for f := range 1000 {
					fields["f"+strconv.Itoa((batch*len(metrics)+i)*1000+f)] = float64(f)
				}
				metrics[i] = metric.New("sensor", map[string]string{"host": "web"}, fields, now)
			}
			require.NoError(t, l.Write(metrics))
		}
	})
	requireHeldWithin(t, held, cacheBudgetBytes+buffersBudget(l)) // only the name cache could grow
	require.LessOrEqual(t, l.conv[0].names.used.entries, cacheMaxEntries+1)
}

// One huge flush gets buffers of its own and gives them back.
func TestHeldMemoryMillionMetricFlush(t *testing.T) {
	skipHeavy(t)
	sink := benchkit.NewSink()
	t.Cleanup(sink.Close)
	l := newPlugin(t, sink.URL())

	held := heldAfter(t, l, func() {
		// A thousand hosts' metrics, each a thousand times (at different
		// times would cost a million metric objects, and the plugin does not
		// care).
		distinct, _ := workload(1000)
		metrics := make([]telegraf.Metric, 1_000_000)
		for i := range metrics {
			metrics[i] = distinct[i%len(distinct)]
		}
		sink.Reset()
		require.NoError(t, l.Write(metrics))
		require.Equal(t, int64(1_000_000*len(distinct[0].FieldList())/300), sink.Requests())
	})
	requireHeldWithin(t, held, heldBudget(l))
}

// The estimated cost of a cache entry must not be below what it really
// takes, or the budgets would not be bounds.
func TestCacheEntryCosts(t *testing.T) {
	skipHeavy(t)
	const n = 20_000
	cases := []struct {
		name   string
		tagged bool
		metric func(i int) telegraf.Metric
	}{
		{"field names", false, func(i int) telegraf.Metric {
			return metric.New("m", map[string]string{"host": "h"}, map[string]any{"field_" + strconv.Itoa(i): 1.0}, time.Now())
		}},
		{"measurements", false, func(i int) telegraf.Metric {
			return metric.New("measurement_"+strconv.Itoa(i), map[string]string{"host": "h"}, map[string]any{"value": 1.0}, time.Now())
		}},
		{"legacy series", false, func(i int) telegraf.Metric {
			return metric.New("m", map[string]string{"host": "host-" + strconv.Itoa(i)}, map[string]any{"value": 1.0}, time.Now())
		}},
		{"tagged series", true, func(i int) telegraf.Metric {
			return metric.New("m", map[string]string{"host": "host-" + strconv.Itoa(i), "dc": "fra"}, map[string]any{"value": 1.0}, time.Now())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newConverter(converterConfig{template: "host", tagged: tc.tagged}, newStats("test"), testutil.Logger{Quiet: true})
			require.NoError(t, err)
			before := liveHeap()
			for i := 0; i < n; i += 1000 {
				metrics := make([]telegraf.Metric, 1000)
				for j := range metrics {
					metrics[j] = tc.metric(i + j)
				}
				c.convert(metrics)
				c.release()
			}
			c.points = nil
			measured := int64(liveHeap()) - int64(before)
			estimated := int64(c.names.used.bytes + c.series.used.bytes)
			runtime.KeepAlive(c)
			t.Logf("%d entries: %.0f bytes each, estimated %.0f", n, float64(measured)/n, float64(estimated)/n)
			require.LessOrEqual(t, measured, estimated)
		})
	}
}

// What the caches cannot keep is converted all the same, every time.
func TestUncachedConvertsTheSame(t *testing.T) {
	long := strings.Repeat("a", maxCachedEntryBytes)
	cases := []struct {
		name   string
		tagged bool
		metric telegraf.Metric
	}{
		{"tag set too large to cache, legacy", false,
			metric.New("cpu", map[string]string{"host": "web", "id": long}, map[string]any{"idle": 1.5}, time.Unix(1e9, 0))},
		{"tag set too large to cache, tagged", true,
			metric.New("cpu", map[string]string{"host": "web", "id": long}, map[string]any{"idle": 1.5}, time.Unix(1e9, 0))},
		{"measurement name too large to cache", false,
			metric.New(long, map[string]string{"host": "web"}, map[string]any{"idle": 1.5, "value": 2.0}, time.Unix(1e9, 0))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newConverter(converterConfig{template: "host", tagged: tc.tagged}, newStats("test"), testutil.Logger{Quiet: true})
			require.NoError(t, err)
			encode := encodeLegacy
			if tc.tagged {
				encode = encodeTagged
			}
			first := string(encode(nil, c.convert([]telegraf.Metric{tc.metric})))
			c.release()
			second := string(encode(nil, c.convert([]telegraf.Metric{tc.metric})))
			require.Equal(t, first, second)
			require.Zero(t, c.names.used.bytes+c.series.used.bytes-cachedNormally(c), "nothing too large cached")
			require.NotContains(t, first, long, "shortened as always")
		})
	}
}

// cachedNormally is what the caches hold of the cases' small parts: the
// name "cpu.idle" and the "host"-only series are not in those cases.
func cachedNormally(c *converter) int {
	n := 0
	for m, names := range c.names.byMeasurement {
		for f, name := range names {
			n += nameEntryCost + len(f) + len(name.text)
		}
		n += measurementEntryCost + len(m)
	}
	for k, s := range c.series.byKey {
		n += seriesEntryCost + len(k) + len(s.Source) + len(s.Tags) + len(s.Problem)
	}
	return n
}

// At its budget a cache starts over; conversion goes on unchanged.
func TestCacheStartsOverAtBudget(t *testing.T) {
	c, err := newConverter(converterConfig{template: "host"}, newStats("test"), testutil.Logger{Quiet: true})
	require.NoError(t, err)
	now := time.Unix(1e9, 0)
	for i := 0; i <= cacheMaxEntries; i += 1000 {
		metrics := make([]telegraf.Metric, 1000)
		for j := range metrics {
			metrics[j] = metric.New("m", map[string]string{"host": fmt.Sprintf("h%d", i+j)}, map[string]any{"value": 1.0}, now)
		}
		pts := c.convert(metrics)
		require.Len(t, pts, len(metrics))
		require.Equal(t, fmt.Sprintf("h%d", i+999), pts[999].Series.Source)
		c.release()
		require.LessOrEqual(t, c.series.used.entries, cacheMaxEntries)
		require.LessOrEqual(t, c.series.used.bytes, cacheBudgetBytes)
	}
	require.Less(t, c.series.used.entries, cacheMaxEntries, "started over")
}

// After a failed flush the ledger holds the keys of what was settled, 8
// bytes each, however large the flush.
func TestLedgerHoldsOnlySettled(t *testing.T) {
	metrics, _ := workload(1000)
	c, err := newConverter(converterConfig{template: "host"}, newStats("test"), testutil.Logger{Quiet: true})
	require.NoError(t, err)
	pts := c.convert(metrics)
	settled := make([]bool, len(pts))
	for i := 0; i < len(pts); i += 100 {
		settled[i] = true
	}
	var led ledger
	led.record(pts, settled, nil)
	require.Len(t, led.done, 30)
	require.Equal(t, 30, cap(led.done), "sized by what was settled, not by the flush")

	kept, carried := led.skipSettled(pts, newStats("test"))
	require.Len(t, kept, len(pts)-30)
	require.Len(t, carried, 30)
	led.record(kept, make([]bool, len(kept)), carried)
	require.Len(t, led.done, 30, "the retry's settled ones stay settled")
	require.Equal(t, 30, cap(led.done))
}
