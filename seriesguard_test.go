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
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
	"github.com/seed-d22a899f/librato/internal/testclock"
)

var epoch = testclock.Epoch()

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

// guardWrite is one Write through the guard: points of the given series
// (name@source), what must come out, and whether the Write was delivered.
type guardWrite struct {
	at        time.Duration
	tagged    bool
	series    []string
	wantKept  []string
	undeliver bool
}

// TestSeriesGuardPolicy: the warm-up takes every series as known until one
// period after the first delivered Write; after it, new series count in a
// window of time, whatever the Writes; names and sources compare as Librato
// compares them, case aside.
func TestSeriesGuardPolicy(t *testing.T) {
	known := []string{"cpu@a", "cpu@b", "mem@a"}
	more := []string{"disk@a", "disk@b", "disk@c", "disk@d"}
	writes := []guardWrite{
		// An outage at start: nothing delivered, the warm-up goes on,
		// even past a period.
		{at: 0, series: known, wantKept: known, undeliver: true},
		{at: 90 * time.Minute, series: more, wantKept: more, undeliver: true},
		// The first delivered Write: the warm-up ends one period later.
		{at: 100 * time.Minute, series: append(more, known...), wantKept: append(more, known...)},
		// Until then, however many series come, in however many Writes.
		{at: 150 * time.Minute, series: []string{"net@a", "net@b", "net@c"}, wantKept: []string{"net@a", "net@b", "net@c"}},
		{at: 159 * time.Minute, series: []string{"net@d"}, wantKept: []string{"net@d"}},
		// Warm-up over: new series count, known ones flow.
		{at: 160 * time.Minute, series: append([]string{"disk@e", "disk@f", "disk@g"}, known...),
			wantKept: append([]string{"disk@e", "disk@f"}, known...)},
		// Telegraf's retry of the same Write: no series counted twice,
		// none admitted before dropped now.
		{at: 161 * time.Minute, series: append([]string{"disk@e", "disk@f", "disk@g"}, known...),
			wantKept: append([]string{"disk@e", "disk@f"}, known...)},
		// The admissions of minute 160 count until minute 221: a period
		// and at most 1/60 of one more.
		{at: 220 * time.Minute, series: []string{"net@e"}, wantKept: nil},
		// Several measurements of one new series: one series.
		{at: 221 * time.Minute, series: []string{"net@e", "net@e", "net@f"}, wantKept: []string{"net@e", "net@e", "net@f"}},
		// Librato's names and sources are case-insensitive: these are
		// known series, while DISK@G is the refused disk@g.
		{at: 222 * time.Minute, series: []string{"CPU@A", "Cpu@b", "mem@A", "NET@E", "DISK@G"},
			wantKept: []string{"CPU@A", "Cpu@b", "mem@A", "NET@E"}},
		// Another API keys series differently: a new warm-up.
		{at: 223 * time.Minute, tagged: true, series: []string{"x@1", "x@2", "x@3", "x@4"}, wantKept: []string{"x@1", "x@2", "x@3", "x@4"}},
		{at: 282 * time.Minute, tagged: true, series: []string{"x@5", "x@6"}, wantKept: []string{"x@5", "x@6"}},
		{at: 283 * time.Minute, tagged: true, series: []string{"x@7", "x@8", "x@9", "X@1"}, wantKept: []string{"x@7", "x@8", "X@1"}},
	}
	clock := epoch
	g := newSeriesGuard(2, time.Hour, newStats("guard-policy"), testutil.Logger{Quiet: true})
	g.now = func() time.Time { return clock }
	for i, w := range writes {
		clock = epoch.Add(w.at)
		var pts []point
		keys := map[*series]string{}
		for _, s := range w.series {
			name, key, _ := strings.Cut(s, "@")
			ser := legacySeriesOf(key)
			if w.tagged {
				ser = taggedSeriesOf("k", key)
			}
			keys[ser] = key
			pts = append(pts, pointOf(name, ser, clock.Unix()))
		}
		var kept []string
		for _, p := range g.screen(pts, w.tagged) {
			kept = append(kept, p.Name+"@"+keys[p.Series])
		}
		require.Equal(t, w.wantKept, kept, "write %d", i)
		require.Equal(t, len(w.series)-len(w.wantKept), g.dropped, "write %d", i)
		g.settle(!w.undeliver)
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

// guardClock gives the plugin's series guard a fake clock, at epoch.
func guardClock(l *Librato) *time.Time {
	clock := epoch
	l.guard.now = func() time.Time { return clock }
	return &clock
}

// TestMaxNewSeries is the acceptance test: a flush of 10,000
// metrics with a unique tag value each and max_new_series = 1000, once the
// warm-up is over.
func TestMaxNewSeries(t *testing.T) {
	for _, api := range []string{apiLegacy, apiTagged} {
		t.Run(api, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			logger := newCaptureLogger()
			l := newPlugin(t, apiURL(fake, api), func(l *Librato) {
				l.API, l.Log, l.MaxNewSeries = api, logger, 1000
			})
			clock := guardClock(l)
			at := epoch

			require.NoError(t, l.Write(knownAndNew(at, 0)))
			*clock = clock.Add(time.Hour) // the warm-up is over
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
	clock := guardClock(l)
	at := epoch
	require.NoError(t, l.Write(knownAndNew(at, 0)))
	*clock = clock.Add(time.Hour) // the warm-up is over

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
	*clock = clock.Add(time.Hour + time.Minute)
	require.NoError(t, l.Write(knownAndNew(at.Add(30*time.Second), 10)))
	require.Equal(t, int64(3), selfStat(l.APIURL, "measurements_dropped", "series_limit"))
	for _, id := range []string{"new-00008", "new-00009"} {
		require.Equal(t, 1, fake.CountGauge("requests", id, at.Add(30*time.Second).Unix()))
	}
}

// TestMaxNewSeriesAfterRestart is issue 15's finding: after a restart with
// more series than max_new_series, Telegraf splits each flush into Writes
// of metric_batch_size, and only the first Write was taken as known: 3,000
// of 6,000 series that already exist in Librato were dropped. Now none is,
// an outage at start included; once the warm-up is over, new series past
// the limit are dropped and counted as before.
func TestMaxNewSeriesAfterRestart(t *testing.T) {
	const existing, limit, batch, fresh = 6000, 1000, 1000, 1500
	cases := []struct {
		name   string
		api    string
		outage int // flushes Librato answers 503 at start
	}{
		{"legacy", apiLegacy, 0},
		{"tagged", apiTagged, 0},
		{"legacy, Librato down for the first flushes", apiLegacy, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var down atomic.Bool
			fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
				if down.Load() {
					return fakelibrato.Action{Status: http.StatusServiceUnavailable}
				}
				return fakelibrato.Action{}
			}})
			logger := newCaptureLogger()
			l := newPlugin(t, apiURL(fake, tc.api), func(l *Librato) {
				l.API, l.Log, l.MaxNewSeries, l.RetryBudget = tc.api, logger, limit, 0
			})
			clock := guardClock(l)
			out, err := models.NewRunningOutput(l, &models.OutputConfig{Name: "librato"}, batch, 100_000)
			require.NoError(t, err)
			// One collection interval of the agent: every existing series,
			// and n new ones; then Telegraf's flush, in Writes of batch.
			flush := func(n int) error {
				at := clock.Truncate(time.Second)
				for i := range existing {
					out.AddMetric(metric.New("app", map[string]string{"host": fmt.Sprintf("h-%04d", i)}, map[string]any{"value": 1.0}, at))
				}
				for i := range n {
					out.AddMetric(metric.New("app", map[string]string{"host": fmt.Sprintf("new-%04d", i)}, map[string]any{"value": 1.0}, at))
				}
				return out.Write()
			}
			series := func() map[string]bool {
				got := map[string]bool{}
				for _, g := range fake.Gauges() {
					got[g.Source] = true
				}
				for _, m := range fake.Measurements() {
					got[m.Tags["host"]] = true
				}
				return got
			}

			down.Store(true)
			for range tc.outage {
				require.Error(t, flush(0))
				*clock = clock.Add(10 * time.Second)
			}
			down.Store(false)
			for range 2 {
				require.NoError(t, flush(0))
				*clock = clock.Add(10 * time.Second)
			}
			require.Zero(t, out.BufferLength())
			require.Zero(t, selfStat(l.APIURL, "measurements_dropped", "series_limit"), "no existing series dropped")
			require.Len(t, series(), existing)
			require.Empty(t, guardWarnings(logger))

			*clock = clock.Add(time.Hour) // the warm-up is over
			require.NoError(t, flush(fresh))
			require.Len(t, series(), existing+limit, "every existing series and limit new ones")
			require.Equal(t, int64(fresh-limit), selfStat(l.APIURL, "measurements_dropped", "series_limit"))
			require.NotEmpty(t, guardWarnings(logger))
		})
	}
}

// TestSeriesGuardComparesAsLibrato: once the warm-up is over, a series is
// known or new as Librato sees it. Sources, names and tag values differing
// only in case are one series; distinct names are distinct series, also the
// ones the hand-written hash of old took for one in every process.
func TestSeriesGuardComparesAsLibrato(t *testing.T) {
	cases := []struct {
		name        string
		api         string
		known, next string // line protocol at 1790000000, at 1790003610
		wantDropped int64
	}{
		{"names the old hash took for one", apiLegacy,
			"disk,host=h iop_rda_max=1", "disk,host=h iop_rda_max=1,io0_rdi_max=2,io0_rdy_max=3", 1},
		{"source in other case", apiLegacy,
			"cpu,host=web1 idle=1", "cpu,host=WEB1 idle=1\ncpu,host=web2 idle=1\ncpu,host=web3 idle=1", 1},
		{"name in other case", apiLegacy,
			"cpu,host=a idle=1", "CPU,host=a idle=1\nmem,host=a free=1\ndisk,host=a used=1", 1},
		{"tag value in other case", apiTagged,
			"cpu,host=web1 idle=1", "cpu,host=WEB1 idle=1\ncpu,host=web2 idle=1\ncpu,host=web3 idle=1", 1},
		{"names the old hash took for one, tagged", apiTagged,
			"disk,host=h iop_rda_max=1", "disk,host=h iop_rda_max=1,io0_rdi_max=2,io0_rdy_max=3", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			l := newPlugin(t, apiURL(fake, tc.api), func(l *Librato) {
				l.API, l.Log, l.MaxNewSeries = tc.api, testutil.Logger{Quiet: true}, 1
			})
			clock := guardClock(l)
			require.NoError(t, l.Write(parseLP(t, tc.known+" 1790000000000000000")))
			*clock = clock.Add(time.Hour) // the warm-up is over
			next := strings.ReplaceAll(tc.next, "\n", " 1790003610000000000\n") + " 1790003610000000000"
			require.NoError(t, l.Write(parseLP(t, next)))
			require.Equal(t, tc.wantDropped, selfStat(l.APIURL, "measurements_dropped", "series_limit"))
		})
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
	clock := epoch
	g.now = func() time.Time { return clock }
	g.screen(pts, false) // the warm-up: every series known
	g.settle(true)
	clock = clock.Add(time.Hour) // and over: the steady state is measured
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
