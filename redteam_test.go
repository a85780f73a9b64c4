package librato

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
	"github.com/seed-d22a899f/librato/internal/testclock"
)

// TestRedTeamGuardWarmUpNeverEndsInAutoWithTaglessMetrics: api = "auto" on a
// legacy-only account whose metrics have no tags (the setup of issue 15's
// loss 2): every Write converts for the tagged API first (nothing to send),
// then falls back to legacy. The series guard took each of those as "a
// change of API" and restarted its warm-up twice per Write, so the warm-up
// never ended and max_new_series was never enforced.
func TestRedTeamGuardWarmUpNeverEndsInAutoWithTaglessMetrics(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.DefaultSource = taglessSource
		l.MaxNewSeries = 10
	})
	clock := guardClock(l)
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	flush := func(at time.Time, fields int) []telegraf.Metric {
		f := map[string]any{}
		for i := range fields {
			f[fmt.Sprintf("f%03d", i)] = float64(i)
		}
		return []telegraf.Metric{metric.New("app", nil, f, at)}
	}
	require.NoError(t, l.Write(flush(base, 5))) // the warm-up: 5 known series
	*clock = clock.Add(2 * time.Hour)           // well past the warm-up
	require.NoError(t, l.Write(flush(base.Add(time.Second), 5)))
	*clock = clock.Add(time.Minute)
	require.NoError(t, l.Write(flush(base.Add(2*time.Second), 200))) // 195 new series

	names := map[string]bool{}
	for _, g := range fake.Gauges() {
		names[g.Name] = true
	}
	require.LessOrEqual(t, len(names), 5+10, "max_new_series = 10 after the warm-up: %d series stored", len(names))
}

// TestRedTeamAutoTaglessDebugLineLeaksQuery: the README says every URL that
// is printed passes the one redaction function (query values masked: an
// api_url behind a proxy may carry a key there). api = "auto"'s fallback for
// tagless metrics logged the legacy endpoint raw.
func TestRedTeamAutoTaglessDebugLineLeaksQuery(t *testing.T) {
	const querySecret = "q-s3cr3t-key"
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.URL()+"/?api_key="+querySecret, func(l *Librato) {
		l.API = apiAuto
		l.DefaultSource = taglessSource
		l.Log = logger
	})
	metrics, _ := tagless(3)
	require.NoError(t, l.Write(metrics))
	require.NotEmpty(t, fake.Gauges())
	require.NotContains(t, logText(logger), querySecret)
}

// redTeamClock is a delivery.Clock whose time passes only when told.
type redTeamClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *redTeamClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *redTeamClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *redTeamClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.advance(d)
	return nil
}

func (c *redTeamClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return testclock.WithDeadline(ctx, c.Now(), t)
}

// TestRedTeamSeriesGuardUsesThePluginsClock: Init says "one clock for
// deadlines and decisions: a simulation's fake time drives the 24-hour
// re-check too", but the series guard read the wall clock: with the
// simulation's clock, its warm-up and window never moved, so max_new_series
// was not enforced however much simulated time passed.
func TestRedTeamSeriesGuardUsesThePluginsClock(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	clock := &redTeamClock{now: epoch}
	l := newPlugin(t, apiURL(fake, apiLegacy), func(l *Librato) {
		l.API, l.MaxNewSeries, l.clock = apiLegacy, 10, clock
	})
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	require.NoError(t, l.Write(knownAndNew(at, 0)))
	clock.advance(2 * time.Hour) // the warm-up (1h after the first delivery) is over
	require.NoError(t, l.Write(knownAndNew(at.Add(10*time.Second), 100)))
	require.Equal(t, int64(90), selfStat(l.APIURL, "measurements_dropped", "series_limit"))
}

// TestRedTeamTagSetKeyIsAmbiguous: the converter's series cache (and the
// ledger's TagSet) keyed a tag set on its keys and values each followed by a
// 0 byte, which a tag value may contain (line protocol and processors let it
// through): {a: "x", b: "y"} and {a: "x\x00b\x00y"} had one key, so the
// second metric was sent under the first one's tags, and a failed flush's
// ledger would skip it as already stored.
func TestRedTeamTagSetKeyIsAmbiguous(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, apiURL(fake, apiTagged), func(l *Librato) { l.API = apiTagged })
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	m1 := metric.New("m", map[string]string{"a": "x", "b": "y"}, map[string]any{"v": 1.0}, at)
	m2 := metric.New("m", map[string]string{"a": "x\x00b\x00y"}, map[string]any{"v": 2.0}, at)
	require.NoError(t, l.Write([]telegraf.Metric{m1, m2}))
	got := map[float64]map[string]string{}
	for _, m := range fake.Measurements() {
		got[m.Value] = m.Tags
	}
	require.Len(t, got, 2)
	require.NotEqual(t, got[1], got[2], "two different tag sets sent as one: %v", got)
}
