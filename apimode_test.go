package librato

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
	"github.com/seed-d22a899f/librato/internal/testclock"
)

func TestResolveEndpoints(t *testing.T) {
	cases := []struct {
		api, url             string
		legacy, tagged, root string
		errHas               string
	}{
		{
			apiLegacy, "https://metrics-api.librato.com/v1/metrics",
			"https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", "",
		},
		{
			apiTagged, "https://metrics-api.librato.com/v1/measurements/",
			"https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", "",
		},
		{
			apiAuto, "https://metrics-api.librato.com",
			"https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", "",
		},
		{
			apiAuto, "https://metrics-api.librato.com/v1/",
			"https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", "",
		},
		{
			apiAuto, "http://127.0.0.1:8080/librato/v1/metrics",
			"http://127.0.0.1:8080/librato/v1/metrics", "http://127.0.0.1:8080/librato/v1/measurements", "http://127.0.0.1:8080/librato", "",
		},
		{
			apiAuto, "https://proxy.example.com/v1/measurements",
			"https://proxy.example.com/v1/metrics", "https://proxy.example.com/v1/measurements", "https://proxy.example.com", "",
		},
		{
			apiLegacy, "https://proxy.example.com/librato-in",
			"https://proxy.example.com/librato-in", "", "", "",
		},
		{
			apiTagged, "https://metrics-api.librato.com/v1/metrics",
			"", "", "",
			`is the legacy API's endpoint, but api = "tagged": set api_url to "https://metrics-api.librato.com/v1/measurements"`,
		},
		{
			apiLegacy, "https://metrics-api.librato.com/v1/measurements",
			"", "", "",
			`is the tagged API's endpoint, but api = "legacy": set api_url to "https://metrics-api.librato.com/v1/metrics"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.api+" "+tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			eps, err := resolveEndpoints(tc.api, u)
			if tc.errHas != "" {
				require.ErrorContains(t, err, tc.errHas)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.legacy, eps.legacy.url)
			if tc.tagged != "" {
				require.Equal(t, tc.tagged, eps.tagged.url)
			}
			require.Equal(t, tc.root, eps.root)
		})
	}
}

// autoEpoch is the fake time of the auto-mode tests' decisions: no test
// depends on the real date.
var autoEpoch = testclock.Epoch()

func TestChooseTagged(t *testing.T) {
	now := autoEpoch
	cases := []struct {
		name      string
		mode      string
		learned   string
		decidedAt time.Time
		want      bool
	}{
		{"legacy", apiLegacy, "", time.Time{}, false},
		{"tagged", apiTagged, "", time.Time{}, true},
		{"auto, nothing learned: try tagged", apiAuto, "", time.Time{}, true},
		{"auto, tagged account", apiAuto, apiTagged, now.Add(-48 * time.Hour), true},
		{"auto, legacy account", apiAuto, apiLegacy, now.Add(-time.Hour), false},
		{"auto, legacy account, just before the re-check", apiAuto, apiLegacy, now.Add(-recheckTagged + time.Second), false},
		{"auto, legacy account, time to ask again", apiAuto, apiLegacy, now.Add(-recheckTagged), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, chooseTagged(tc.mode, tc.learned, tc.decidedAt, now))
		})
	}
}

// TestLearnFromTaggedAnswers: only the tagged API's answers decide, and a
// legacy decision's time is that of the last "not enabled", never of a
// success in between (successes do not reach learn at all).
func TestLearnFromTaggedAnswers(t *testing.T) {
	now := autoEpoch
	earlier := now.Add(-5 * time.Hour)
	cases := []struct {
		name          string
		mode          string
		learned       string
		decidedAt     time.Time
		accepted      bool
		wantLearned   string
		wantDecidedAt time.Time
		wantLogged    int
	}{
		{"first acceptance", apiAuto, "", time.Time{}, true, apiTagged, now, 1},
		{"first not enabled", apiAuto, "", time.Time{}, false, apiLegacy, now, 1},
		{"acceptance confirms tagged", apiAuto, apiTagged, earlier, true, apiTagged, earlier, 0},
		{"re-check: not enabled again restarts the wait", apiAuto, apiLegacy, earlier, false, apiLegacy, now, 0},
		{"re-check: tags enabled since", apiAuto, apiLegacy, earlier, true, apiTagged, now, 1},
		{"tagged account loses tags", apiAuto, apiTagged, earlier, false, apiLegacy, now, 1},
		{"fixed api learns nothing", apiTagged, "", time.Time{}, false, "", time.Time{}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logged := 0
			a := apiChoice{mode: tc.mode, learned: tc.learned, decidedAt: tc.decidedAt,
				logLearned: func(bool) { logged++ }}
			a.learn(tc.accepted, now)
			require.Equal(t, tc.wantLearned, a.learned)
			require.Equal(t, tc.wantDecidedAt, a.decidedAt)
			require.Equal(t, tc.wantLogged, logged)
		})
	}
}

// TestAutoRechecksADayAfterTheDecision: a legacy-only account is asked
// again 24 h after it said "not enabled", although every flush in between
// succeeded; the re-check's "not enabled" starts the next 24 h.
func TestAutoRechecksADayAfterTheDecision(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	l := newPlugin(t, fake.URL(), func(l *Librato) { l.API = apiAuto })
	now := autoEpoch
	l.apis.now = func() time.Time { return now }

	taggedRequests := func() int { return countAuto(fake, "host").taggedRequests }
	var asked []int
	for hour := 0; hour <= 49; hour++ {
		now = autoEpoch.Add(time.Duration(hour) * time.Hour)
		before := taggedRequests()
		metrics, _ := workload(20)
		require.NoError(t, l.Write(metrics))
		if taggedRequests() > before {
			asked = append(asked, hour)
		}
	}
	t.Logf("asked the tagged API at hours %v; %d tagged requests in all", asked, taggedRequests())
	require.Equal(t, []int{0, 24, 48}, asked)
	require.Equal(t, autoEpoch.Add(48*time.Hour), l.apis.decidedAt)
}

// TestAutoOnLegacyAccount: the account answers 403 "not enabled" on
// /v1/measurements. Every gauge arrives once at /v1/metrics with the
// template's source, and later flushes go there directly.
func TestAutoOnLegacyAccount(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.Log = logger
	})
	metrics, want := workload(1000)
	require.NoError(t, l.Write(metrics[:500]))
	require.NoError(t, l.Write(metrics[500:]))

	requireExactlyOnce(t, fake, want)
	require.Empty(t, fake.Measurements())
	tagged := 0
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, taggedPath) {
			tagged++
		}
	}
	require.LessOrEqual(t, tagged, defaultConcurrentWrites, "only the first flush asks the tagged API")
	require.Contains(t, logText(logger), `api = "auto": the account has no tag-based measurements`)
	require.Zero(t, l.stats.dropped[reasonRejected].Get())
}

func TestAutoOnTaggedAccount(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.API = apiAuto })
	metrics, want := workload(1000)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnceIn(t, fake, apiTagged, want)
	require.Empty(t, fake.Gauges())
}

func TestAPIURLMustMatchAPI(t *testing.T) {
	l := unstarted()
	l.API = apiTagged
	l.APIURL = "https://metrics-api.librato.com/v1/metrics"
	require.ErrorContains(t, l.Init(), `set api_url to "https://metrics-api.librato.com/v1/measurements", or api = "legacy" or "auto"`)
}

// TestAutoRetryStaysOnTheFailedFlushsAPI: the daily re-check of a legacy
// account tries tagged, and that flush fails half-way. Telegraf's retry
// must go to the same API, whose keys the ledger holds, or what was
// stored would be sent again.
func TestAutoRetryStaysOnTheFailedFlushsAPI(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
		if n == 2 {
			return fakelibrato.Action{Status: http.StatusServiceUnavailable}
		}
		return fakelibrato.Action{}
	}})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.RetryBudget = 0
		l.ConcurrentWrites = 1
	})
	l.apis.now = func() time.Time { return autoEpoch }
	l.apis.learned, l.apis.decidedAt = apiLegacy, autoEpoch.Add(-25*time.Hour)
	out := runningOutput(t, l)
	metrics, want := workload(1000) // 3,000 measurements, 10 requests
	addAll(out, metrics)
	flushUntilEmpty(t, out, 4)

	arrived := map[fakeKey]int{}
	for _, m := range fake.Measurements() {
		arrived[fakeKey{m.Name, m.Tags["host"], m.Time}]++
	}
	for _, g := range fake.Gauges() {
		arrived[fakeKey{g.Name, g.Source, g.MeasureTime}]++
	}
	twice := 0
	for _, k := range want {
		require.Positive(t, arrived[k], "measurement %v", k)
		twice += arrived[k] - 1
	}
	t.Logf("tagged: %d measurements, legacy: %d gauges", len(fake.Measurements()), len(fake.Gauges()))
	require.Zero(t, twice, "no measurement may be sent twice without a lost acknowledgement")
}

// TestAutoFallbackKeepsTheWriteDeadline: the tagged try of api = "auto"
// takes nearly the whole window before the 403 "not enabled". The fallback
// to legacy gets only what is left of the same Write's deadline; when that
// is not enough, the metrics stay buffered and the next flush (now learned
// as legacy) delivers them once.
func TestAutoFallbackKeepsTheWriteDeadline(t *testing.T) {
	const timeout = 2 * time.Second
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true, Latency: 1900 * time.Millisecond})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.Timeout = config.Duration(timeout)
		l.RetryBudget = 0
	})
	metrics, want := workload(10)
	start := time.Now()
	err := l.Write(metrics)
	took := time.Since(start)
	require.Less(t, took, timeout+time.Second, "one deadline per Write: timeout + retry_budget + 1s")
	require.ErrorIs(t, err, errDeadline, "no time left for the fallback in this Write")
	require.Empty(t, fake.Gauges())

	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	for _, r := range fake.Requests()[1:] {
		require.Equal(t, legacyPath, r.Path, "learned: straight to the legacy API")
	}
}

// autoCounts is what one auto-mode scenario cost and delivered, for the
// regression tests' assertions and the closing note's table.
type autoCounts struct {
	taggedRequests, legacyRequests int
	// delivered: distinct measurements stored (both APIs); duplicated:
	// further copies of them, in either API.
	delivered, duplicated int
}

// countAuto counts what the fake stored, keyed by name, the gauge's source
// or the measurement's host tag, and time: the same measurement sent to
// both APIs counts as a duplicate.
func countAuto(fake *fakelibrato.Server, sourceTag string) autoCounts {
	var c autoCounts
	for _, r := range fake.Requests() {
		switch {
		case strings.HasSuffix(r.Path, taggedPath):
			c.taggedRequests++
		case strings.HasSuffix(r.Path, legacyPath):
			c.legacyRequests++
		}
	}
	stored := map[fakeKey]int{}
	for _, g := range fake.Gauges() {
		stored[fakeKey{g.Name, g.Source, g.MeasureTime}]++
	}
	for _, m := range fake.Measurements() {
		stored[fakeKey{m.Name, m.Tags[sourceTag], m.Time}]++
	}
	for _, n := range stored {
		c.delivered++
		c.duplicated += n - 1
	}
	return c
}

// taglessSource is the default_source of the tests with tagless metrics.
const taglessSource = "telegraf"

// tagless makes n metrics of 3 fields without tags (omit_hostname, or tags
// all filtered out), at distinct recent times; with default_source they
// have a source in the legacy API and nothing to send in the tagged one.
func tagless(n int) ([]telegraf.Metric, []fakeKey) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	metrics := make([]telegraf.Metric, 0, n)
	want := make([]fakeKey, 0, 3*n)
	for i := range n {
		ts := base.Add(-time.Duration(i) * time.Second)
		metrics = append(metrics, metric.New("app", nil, map[string]any{"a": float64(i), "b": int64(i), "c": i%2 == 0}, ts))
		for _, f := range []string{"a", "b", "c"} {
			want = append(want, fakeKey{"app." + f, taglessSource, ts.Unix()})
		}
	}
	return metrics, want
}

// TestAutoTaglessOnLegacyAccount is the measured loss: a legacy-only
// account, metrics without tags and default_source. The tagged conversion
// has nothing to send, so no tagged request goes out and nothing may be
// decided from it: every measurement arrives once at the legacy API, and no
// no_tags drop is logged or counted for a flush that went to legacy.
func TestAutoTaglessOnLegacyAccount(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.DefaultSource = taglessSource
		l.Log = logger
	})
	metrics, want := tagless(1100) // 3,300 measurements
	for _, part := range [][]telegraf.Metric{metrics[:550], metrics[550:]} {
		require.NoError(t, l.Write(part))
	}

	c := countAuto(fake, "source")
	t.Logf("| tagless on a legacy account | %d tagged + %d legacy requests | %d delivered | %d duplicated | %d dropped no_tags |",
		c.taggedRequests, c.legacyRequests, c.delivered, c.duplicated, l.stats.dropped[reasonNoTags].Get())
	requireExactlyOnce(t, fake, want)
	require.Zero(t, c.taggedRequests, "nothing to ask the tagged API with")
	require.Zero(t, l.stats.dropped[reasonNoTags].Get())
	require.NotContains(t, logText(logger), "no_tags")
	require.Empty(t, l.apis.learned, "a flush that sent no tagged request decides nothing")

	// A later flush with tags asks, and learns the account is legacy-only.
	tagged, wantTagged := workload(100)
	require.NoError(t, l.Write(tagged))
	require.Equal(t, apiLegacy, l.apis.learned)
	requireExactlyOnce(t, fake, append(want, wantTagged...))
}

// TestAutoMixedFlush: while auto is undecided, a flush with tagless metrics
// among tagged ones asks the tagged API with the tagged ones. A legacy-only
// account answers "not enabled" and the whole flush goes to the legacy API,
// where the tagless metrics have default_source; a tagged account takes the
// tagged ones, and from then on metrics without tags are dropped as no_tags
// as with api = "tagged", counted once.
func TestAutoMixedFlush(t *testing.T) {
	for _, tc := range []struct {
		name           string
		taggedDisabled bool
		learned        string
		noTags         int64
	}{
		{"legacy account", true, apiLegacy, 0},
		{"tagged account", false, apiTagged, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{TaggedDisabled: tc.taggedDisabled})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.URL(), func(l *Librato) {
				l.API = apiAuto
				l.DefaultSource = taglessSource
				l.Log = logger
			})
			withTags, want := workload(300)
			noTags, wantNoTags := tagless(100)
			require.NoError(t, l.Write(append(withTags, noTags...)))

			c := countAuto(fake, "host")
			t.Logf("| mixed flush, %s | %d tagged + %d legacy requests | %d delivered | %d duplicated | %d dropped no_tags |",
				tc.name, c.taggedRequests, c.legacyRequests, c.delivered, c.duplicated, l.stats.dropped[reasonNoTags].Get())
			require.Equal(t, tc.learned, l.apis.learned)
			require.Equal(t, tc.noTags, l.stats.dropped[reasonNoTags].Get())
			require.Zero(t, c.duplicated)
			if tc.taggedDisabled {
				requireExactlyOnce(t, fake, append(want, wantNoTags...))
				require.NotContains(t, logText(logger), "no_tags")
				return
			}
			requireExactlyOnceIn(t, fake, apiTagged, want)
			require.Empty(t, fake.Gauges())
			require.Equal(t, 1, strings.Count(logText(logger), "(no_tags)"), "one warning for the flush")
		})
	}
}

// TestAutoFallbackCountsOnlyLegacyDrops: a flush that falls back from the
// tagged API to the legacy one reports the local drops of the legacy
// conversion only, once: a NaN is one invalid_value, not two, and the tagged
// conversion's no_tags drops are not reported at all.
func TestAutoFallbackCountsOnlyLegacyDrops(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.DefaultSource = taglessSource
		l.Log = logger
	})
	metrics, want := workload(300)
	noTags, wantNoTags := tagless(10)
	metrics = append(metrics, noTags...)
	metrics = append(metrics, metric.New("bad", map[string]string{"host": "h"}, map[string]any{"v": math.NaN()}, time.Now()))
	require.NoError(t, l.Write(metrics))

	requireExactlyOnce(t, fake, append(want, wantNoTags...))
	require.Equal(t, int64(1), l.stats.dropped[reasonInvalidValue].Get())
	require.Zero(t, l.stats.dropped[reasonNoTags].Get())
	text := logText(logger)
	require.Equal(t, 1, strings.Count(text, "(invalid_value)"), text)
	require.NotContains(t, text, "no_tags")
}

// TestAutoFallbackShortensANameOnce: both APIs' conversions of a Write that
// falls back name its measurements; a name too long for Librato is
// shortened, counted and logged once, not once per API.
func TestAutoFallbackShortensANameOnce(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.Log = logger
	})
	long := strings.Repeat("m", maxNameLen+10)
	require.NoError(t, l.Write([]telegraf.Metric{metric.New(long, map[string]string{"host": "h"}, map[string]any{"value": 1.0}, time.Now())}))

	require.Len(t, fake.Gauges(), 1, "delivered to the legacy API")
	require.Equal(t, int64(1), l.stats.shortened.Get())
	require.Equal(t, 1, strings.Count(logText(logger), "Shortened "), logText(logger))
}

// notEnabledJSON is Librato's answer on /v1/measurements for an account
// without tag-based measurements.
var notEnabledJSON = []byte(`{"errors":["Tag based measurements are not enabled for this account. Please contact support."]}`)

// TestAutoSwitchMidFlushSendsNothingTwice: the tagged API stores the
// first request of a flush, then answers 403 "not enabled". The fallback to
// legacy in the same Write must skip what tagged stored: the ledger's keys
// are the same for both APIs and it is not reset by the switch.
func TestAutoSwitchMidFlushSendsNothingTwice(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(n int, r *fakelibrato.Received) fakelibrato.Action {
		if n > 1 && strings.HasSuffix(r.Path, taggedPath) {
			return fakelibrato.Action{Status: http.StatusForbidden,
				Header: http.Header{"Content-Type": {"application/json"}}, Body: notEnabledJSON}
		}
		return fakelibrato.Action{}
	}})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.ConcurrentWrites = 1
	})
	metrics, want := workload(1000) // 3,000 measurements, 10 requests
	require.NoError(t, l.Write(metrics))

	c := countAuto(fake, "host")
	t.Logf("| 403 not enabled mid-flush | %d tagged + %d legacy requests | %d delivered | %d duplicated |",
		c.taggedRequests, c.legacyRequests, c.delivered, c.duplicated)
	require.Len(t, fake.Measurements(), 300, "the first tagged request was stored")
	require.Zero(t, c.duplicated, "what the tagged API stored is not sent to the legacy one")
	require.Equal(t, len(want), c.delivered)
	require.Equal(t, apiLegacy, l.apis.learned)
}

// firewallNotEnabledPage is a firewall's 403 page that happens to say "not enabled".
var firewallNotEnabledPage = []byte(`<html><head><title>403 Forbidden</title></head><body><h1>Access denied</h1>` +
	`<p>This feature is not enabled for your network.</p></body></html>`)

// TestAutoHTMLNotEnabledDecidesNothing: a 403 HTML page containing "not
// enabled" is not Librato's answer: auto must not switch to legacy. The flush
// fails, nothing is sent to the legacy API or dropped, and once the page is
// gone the retry delivers everything to the tagged API once.
func TestAutoHTMLNotEnabledDecidesNothing(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	fake.SetFault(func(_ int, r *fakelibrato.Received) fakelibrato.Action {
		if strings.HasSuffix(r.Path, taggedPath) {
			return fakelibrato.Action{Status: http.StatusForbidden,
				Header: http.Header{"Content-Type": {"text/html"}}, Body: firewallNotEnabledPage}
		}
		return fakelibrato.Action{}
	})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.RetryBudget = 0
	})
	metrics, want := workload(300)
	require.Error(t, l.Write(metrics))

	c := countAuto(fake, "host")
	t.Logf("| HTML 403 \"not enabled\" | %d tagged + %d legacy requests | %d delivered | %d dropped |",
		c.taggedRequests, c.legacyRequests, c.delivered, l.stats.dropped[reasonRejected].Get())
	require.Zero(t, c.legacyRequests, "an HTML page decides nothing")
	require.Empty(t, l.apis.learned)
	require.Zero(t, l.stats.dropped[reasonRejected].Get())

	fake.SetFault(nil)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnceIn(t, fake, apiTagged, want)
	require.Empty(t, fake.Gauges())
}
