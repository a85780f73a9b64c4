package librato

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

var epoch = time.Unix(1790000000, 0)

func TestSeriesWindow(t *testing.T) {
	// A limit of 3 per minute: slots of one second.
	steps := []struct {
		at        time.Duration
		wantAllow int
		take      int
	}{
		{0, 3, 2},
		{30 * time.Second, 1, 1},
		{59 * time.Second, 0, 0},
		{60 * time.Second, 0, 0},  // the slot of 0s counts until 61s: a full period and then some
		{61 * time.Second, 2, 2},  // the two of 0s left
		{90 * time.Second, 0, 0},  // 30s, 61s still count
		{91 * time.Second, 1, 0},  // 30s left
		{10 * time.Second, 1, 0},  // a clock going back expires nothing
		{121 * time.Second, 1, 0}, // 61s still counts until 122s
		{122 * time.Second, 3, 3}, // everything left
		{time.Hour, 3, 0},         // a jump past the whole window
		{time.Hour + 500*time.Millisecond, 3, 1},
	}
	w := newSeriesWindow(3, time.Minute)
	for _, s := range steps {
		require.Equal(t, s.wantAllow, w.allowance(epoch.Add(s.at)), "at %s", s.at)
		w.take(s.take)
	}
}

// TestSeriesWindowNeverExceedsLimit: whatever the pattern of flushes, no
// interval of one period ever holds more than limit admissions.
func TestSeriesWindowNeverExceedsLimit(t *testing.T) {
	const limit, period = 50, time.Hour
	rng := rand.New(rand.NewPCG(1, 2))
	w := newSeriesWindow(limit, period)
	admitted := make([]time.Time, 0, 7*5000) // at most 7 a flush
	now := epoch
	for range 5000 {
		now = now.Add(time.Duration(rng.Int64N(int64(3 * time.Minute))))
		n := min(w.allowance(now), rng.IntN(8))
		w.take(n)
		for range n {
			admitted = append(admitted, now)
		}
	}
	for i, start := range admitted {
		in := 0
		for _, a := range admitted[i:] {
			if a.Sub(start) < period {
				in++
			}
		}
		require.LessOrEqual(t, in, limit, "admissions in the hour from %s", start)
	}
	// Demand is well above the limit, so the window must also admit close
	// to limit per period (it is at most 1/60 of a period stricter).
	require.Greater(t, float64(len(admitted)), 0.9*limit*float64(now.Sub(epoch))/float64(period))
}

func TestSeenSeries(t *testing.T) {
	// 16 slots: a generation is full at 12.
	s := seenSeries{maxSlots: 16}
	for k := uint64(1); k <= 12; k++ {
		s.add(k)
	}
	s.add(13)                 // the first generation becomes the old one
	require.True(t, s.has(1)) // found there, and moved to the current one
	for k := uint64(14); k <= 23; k++ {
		s.add(k)
	}
	s.add(24) // the current generation (13, 1, 14…23) was full: 2…12 are forgotten
	for k := uint64(2); k <= 12; k++ {
		require.False(t, s.has(k), "key %d", k)
	}
	for _, k := range []uint64{1, 13, 14, 23, 24} {
		require.True(t, s.has(k), "key %d", k)
	}
}

// TestSeenSeriesMemory: however many series come, the set stays within two
// generations of maxSeenSlots hashes (8 MiB), and remembers at least the
// last maxSeenSlots·3/4.
func TestSeenSeriesMemory(t *testing.T) {
	s := seenSeries{maxSlots: maxSeenSlots}
	const n = 2 * maxSeenSlots
	for k := uint64(1); k <= n; k++ {
		s.add(k * 0x9e3779b97f4a7c15)
	}
	require.LessOrEqual(t, 8*(len(s.cur.slots)+len(s.old.slots)), 8<<20)
	for k := uint64(n - maxSeenSlots/4*3 + 1); k <= n; k++ {
		require.True(t, s.has(k*0x9e3779b97f4a7c15), "key %d", k)
	}
}

// guardFlush is one flush through the guard: points of the given series
// (name@source), and what must come out.
type guardFlush struct {
	at       time.Duration
	tagged   bool
	series   []string
	wantKept []string
}

func TestSeriesGuardPolicy(t *testing.T) {
	known := []string{"cpu@a", "cpu@b", "mem@a"}
	flushes := []guardFlush{
		// The first flush is taken as known, however many series it has.
		{at: 0, series: known, wantKept: known},
		{at: time.Minute, series: append([]string{"disk@a", "disk@b", "disk@c"}, known...),
			wantKept: append([]string{"disk@a", "disk@b"}, known...)},
		// Telegraf's retry of the same flush: no series counted twice,
		// none admitted before dropped now.
		{at: 2 * time.Minute, series: append([]string{"disk@a", "disk@b", "disk@c"}, known...),
			wantKept: append([]string{"disk@a", "disk@b"}, known...)},
		// The admissions of minute 1 count until minute 62: a period and
		// at most 1/60 of one more.
		{at: 61 * time.Minute, series: []string{"net@a"}, wantKept: nil},
		// Several measurements of one new series: one series.
		{at: 62 * time.Minute, series: []string{"net@a", "net@a", "net@b"}, wantKept: []string{"net@a", "net@a", "net@b"}},
		{at: 63 * time.Minute, series: []string{"disk@c"}, wantKept: nil},
		{at: 64 * time.Minute, series: []string{"disk@a", "disk@b", "net@a"}, wantKept: []string{"disk@a", "disk@b", "net@a"}},
		// Another API keys series differently: its first flush is taken
		// as known too.
		{at: 65 * time.Minute, tagged: true, series: []string{"x@1", "x@2", "x@3", "x@4"}, wantKept: []string{"x@1", "x@2", "x@3", "x@4"}},
		{at: 66 * time.Minute, tagged: true, series: []string{"x@5", "x@6"}, wantKept: nil},
	}
	clock := epoch
	g := newSeriesGuard(2, time.Hour, newStats("guard-policy"), testutil.Logger{Quiet: true})
	g.now = func() time.Time { return clock }
	interned := map[string]*series{}
	for i, f := range flushes {
		clock = epoch.Add(f.at)
		var pts []point
		for _, s := range f.series {
			name, key, _ := strings.Cut(s, "@")
			if interned[key] == nil {
				interned[key] = legacySeriesOf(key)
				if f.tagged {
					interned[key] = taggedSeriesOf("k", key)
				}
				interned[key].Source = key
			}
			pts = append(pts, pointOf(name, interned[key], clock.Unix()))
		}
		var kept []string
		for _, p := range g.screen(pts, f.tagged) {
			kept = append(kept, p.Name+"@"+p.Series.Source)
		}
		require.Equal(t, f.wantKept, kept, "flush %d", i)
		require.Equal(t, len(f.series)-len(f.wantKept), g.dropped, "flush %d", i)
	}
}

func TestInitRejectsBadSeriesGuard(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*Librato)
		wantError string
	}{
		{"negative", func(l *Librato) { l.MaxNewSeries = -1 }, "max_new_series must not be negative"},
		{"period under a second", func(l *Librato) {
			l.MaxNewSeries, l.MaxNewSeriesPeriod = 10, config.Duration(500*time.Millisecond)
		}, "max_new_series_period must be at least 1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := unstarted()
			tc.configure(l)
			require.ErrorContains(t, l.Init(), tc.wantError)
		})
	}
	l := unstarted()
	l.MaxNewSeries = 5
	require.NoError(t, l.Init())
	require.Equal(t, time.Hour, l.guard.period, "default max_new_series_period")
	require.Nil(t, unstartedInit(t).guard, "off by default")
}

func unstartedInit(t *testing.T) *Librato {
	l := unstarted()
	require.NoError(t, l.Init())
	return l
}

// guardWarnings returns the series guard's warnings.
func guardWarnings(logger *testutil.CaptureLogger) []string {
	var out []string
	for _, e := range logger.Messages() {
		if e.Level == testutil.LevelWarn && strings.Contains(e.Text, "of new series") {
			out = append(out, e.Text)
		}
	}
	return out
}

// knownAndNew makes the metrics of a flush at t: 50 known hosts with two
// fields each, and n metrics each with a tag value never seen before.
func knownAndNew(t time.Time, n int) []telegraf.Metric {
	ms := make([]telegraf.Metric, 0, 50+n)
	for i := range 50 {
		ms = append(ms, metric.New("cpu", map[string]string{"host": fmt.Sprintf("known-%02d", i)},
			map[string]any{"idle": 90.0, "user": 5.0}, t))
	}
	for i := range n {
		id := fmt.Sprintf("new-%05d", i)
		ms = append(ms, metric.New("requests", map[string]string{"host": id, "request_id": id},
			map[string]any{"value": 1.0}, t))
	}
	return ms
}

// TestMaxNewSeries is the acceptance test: a flush of 10,000
// metrics with a unique tag value each and max_new_series = 1000.
func TestMaxNewSeries(t *testing.T) {
	for _, api := range []string{apiLegacy, apiTagged} {
		t.Run(api, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			logger := newCaptureLogger()
			l := newPlugin(t, apiURL(fake, api), func(l *Librato) {
				l.API, l.Log, l.MaxNewSeries = api, logger, 1000
			})
			at := time.Now().Truncate(time.Second).Add(-time.Minute)

			require.NoError(t, l.Write(knownAndNew(at, 0)))
			require.NoError(t, l.Write(knownAndNew(at.Add(10*time.Second), 10_000)))

			known, fresh := map[string]int{}, map[string]int{}
			count := func(name, series string) {
				if name == "requests" {
					fresh[series]++
				} else {
					known[name+" "+series]++
				}
			}
			for _, g := range fake.Gauges() {
				count(g.Name, g.Source)
			}
			for _, m := range fake.Measurements() {
				count(m.Name, m.Tags["host"])
			}
			require.Len(t, known, 100, "every known series")
			for k, n := range known {
				require.Equal(t, 2, n, "known series %s, sent in both flushes", k)
			}
			require.Len(t, fresh, 1000, "new series admitted")
			for k, n := range fresh {
				require.Equal(t, 1, n, "new series %s", k)
			}
			require.Equal(t, int64(9000), selfStat(l.APIURL, "measurements_dropped", "series_limit"))
			warnings := guardWarnings(logger)
			require.Len(t, warnings, 1)
			require.Contains(t, warnings[0], "Dropped 9000 measurement(s) of new series: max_new_series = 1000 per 1h0m0s reached")
		})
	}
}

// TestMaxNewSeriesRetry: a flush that fails and comes back from Telegraf
// counts its new series once, delivers the ones it admitted, and reports its
// drops once.
func TestMaxNewSeriesRetry(t *testing.T) {
	var failing atomic.Bool
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		if failing.Load() {
			return fakelibrato.Action{Status: http.StatusServiceUnavailable}
		}
		return fakelibrato.Action{}
	}})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
		l.Log, l.MaxNewSeries, l.RetryBudget = logger, 8, 0
	})
	at := time.Now().Truncate(time.Second).Add(-time.Minute)
	require.NoError(t, l.Write(knownAndNew(at, 0)))

	failing.Store(true)
	flush := knownAndNew(at.Add(10*time.Second), 10)
	require.Error(t, l.Write(flush))
	require.Zero(t, selfStat(l.APIURL, "measurements_dropped", "series_limit"), "not dropped while Telegraf keeps them")
	require.Empty(t, guardWarnings(logger))
	failing.Store(false)
	require.NoError(t, l.Write(flush))
	require.Equal(t, int64(2), selfStat(l.APIURL, "measurements_dropped", "series_limit"))
	require.Len(t, guardWarnings(logger), 1)
	for i := range 8 {
		require.Equal(t, 1, fake.CountGauge("requests", fmt.Sprintf("new-%05d", i), at.Add(10*time.Second).Unix()))
	}

	// The retry used no more of the allowance: it is spent, not twice over.
	require.NoError(t, l.Write(knownAndNew(at.Add(20*time.Second), 9)))
	require.Equal(t, int64(3), selfStat(l.APIURL, "measurements_dropped", "series_limit"), "new-00008 only")

	// One period later the allowance is back.
	l.guard.now = func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	require.NoError(t, l.Write(knownAndNew(at.Add(30*time.Second), 10)))
	require.Equal(t, int64(3), selfStat(l.APIURL, "measurements_dropped", "series_limit"))
	for _, id := range []string{"new-00008", "new-00009"} {
		require.Equal(t, 1, fake.CountGauge("requests", id, at.Add(30*time.Second).Unix()))
	}
}

// BenchmarkSeriesGuard is the guard on the benchmark workload, every series
// known: its cost per gauge when it only lets series through.
func BenchmarkSeriesGuard(b *testing.B) {
	st := newStats("bench-guard")
	conv, err := newConverter(converterConfig{template: "host"}, st, quietLogger{})
	require.NoError(b, err)
	pts := conv.convert(knownAndNew(epoch, 1000))
	g := newSeriesGuard(1000, time.Hour, st, quietLogger{})
	g.screen(pts, false)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(g.screen(pts, false)) != len(pts) {
			b.Fatal("dropped a known series")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/gauge")
}

func TestSeriesGuardSettingsLoad(t *testing.T) {
	out := loadOutput(t, "https://metrics-api.librato.com/v1/metrics", "max_new_series = 500\nmax_new_series_period = \"30m\"")
	g := out.Output.(*Librato).guard
	require.NotNil(t, g)
	require.Equal(t, 500, g.window.limit)
	require.Equal(t, 30*time.Minute, g.period)
}
