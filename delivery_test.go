package librato

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// These tests are the delivery contract: for each failure, exactly which
// measurements reach the (fake) API and how many times.

// workload makes n metrics of 3 fields each, at distinct recent times, and
// the gauges they should produce.
func workload(n int) ([]telegraf.Metric, []fakeKey) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	metrics := make([]telegraf.Metric, 0, n)
	want := make([]fakeKey, 0, 3*n)
	for i := range n {
		host := fmt.Sprintf("host%02d", i%20)
		ts := base.Add(-time.Duration(i/20) * time.Second)
		metrics = append(metrics, metric.New("cpu", map[string]string{"host": host, "cpu": "total"},
			map[string]any{"idle": float64(i), "user": int64(i), "busy": i%2 == 0}, ts))
		for _, f := range []string{"idle", "user", "busy"} {
			want = append(want, fakeKey{"cpu." + f, host, ts.Unix()})
		}
	}
	return metrics, want
}

type fakeKey struct {
	name, source string
	time         int64
}

func newFake(t *testing.T, opts fakelibrato.Options) *fakelibrato.Server {
	opts.User, opts.Token = testUser, testToken
	for {
		s := fakelibrato.New(opts)
		// The plugin's self-metrics are keyed by URL, and the OS may give
		// a later fake a port an earlier test used: its counters would
		// start where that test's ended. Each fake gets a URL of its own.
		if _, used := fakeURLs.LoadOrStore(s.URL(), true); used {
			s.Close()
			continue
		}
		t.Cleanup(s.Close)
		return s
	}
}

// fakeURLs are the fakes' URLs used so far in this test process.
var fakeURLs sync.Map

// requireExactlyOnce checks every wanted gauge arrived once and nothing else
// arrived.
func requireExactlyOnce(t *testing.T, fake *fakelibrato.Server, want []fakeKey) {
	t.Helper()
	requireExactlyOnceIn(t, fake, apiLegacy, want)
}

// apiURL is the fake's endpoint for api. The delivery guarantees hold for
// both APIs; in the tagged one a workload key's source is its host tag.
func apiURL(fake *fakelibrato.Server, api string) string {
	if api == apiTagged {
		return fake.TaggedURL()
	}
	return fake.LegacyURL()
}

func requireExactlyOnceIn(t *testing.T, fake *fakelibrato.Server, api string, want []fakeKey) {
	t.Helper()
	arrived := map[fakeKey]int{}
	total := 0
	if api == apiTagged {
		for _, m := range fake.Measurements() {
			if m.Name != delivery.ControlName {
				arrived[fakeKey{m.Name, m.Tags["host"], m.Time}]++
				total++
			}
		}
	} else {
		for _, g := range fake.Gauges() {
			if g.Name != delivery.ControlName {
				arrived[fakeKey{g.Name, g.Source, g.MeasureTime}]++
				total++
			}
		}
	}
	for _, k := range want {
		require.Equal(t, 1, arrived[k], "measurement %v", k)
	}
	require.Equal(t, len(want), total)
}

// debugPlugin is a plugin with debug logging captured, to check what users
// see and that credentials never appear.
func debugPlugin(t *testing.T, url string, configure ...func(*Librato)) (*Librato, *testutil.CaptureLogger) {
	logger := newCaptureLogger()
	l := newPlugin(t, url, append([]func(*Librato){func(l *Librato) {
		l.Debug = true
		l.Log = logger
	}}, configure...)...)
	t.Cleanup(func() { requireNoCredentials(t, logText(logger)) })
	return l, logger
}

func requireNoCredentials(t *testing.T, text string) {
	t.Helper()
	require.NotContains(t, text, testToken)
	require.NotContains(t, text, testUser)
}

func TestInvalidValuesAmongGoodOnes(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l, logger := debugPlugin(t, fake.LegacyURL())
	metrics, want := workload(2000)
	for i, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e200} {
		metrics = append(metrics, metric.New("bad", map[string]string{"host": "h"},
			map[string]any{"v": v, "ok": float64(i)}, time.Now().Truncate(time.Second).Add(time.Duration(-i)*time.Second)))
		want = append(want, fakeKey{"bad.ok", "h", time.Now().Truncate(time.Second).Add(time.Duration(-i) * time.Second).Unix()})
	}

	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	require.Contains(t, logText(logger), "Dropped 3 measurement(s) (invalid_value)")
	require.Contains(t, logText(logger), "Dropped 1 measurement(s) (out_of_range)")
}

func TestRejectedMeasurementsAreIsolated(t *testing.T) {
	for _, tc := range []struct {
		api       string
		namesThem bool
	}{{apiLegacy, false}, {apiLegacy, true}, {apiTagged, false}, {apiTagged, true}} {
		t.Run(fmt.Sprintf("%s, error names the metric=%v", tc.api, tc.namesThem), func(t *testing.T) {
			metrics, want := workload(1000)
			bad := map[fakeKey]bool{want[10]: true, want[700]: true, want[2999]: true}
			fake := newFake(t, fakelibrato.Options{Fault: rejectMeasurements(bad, tc.namesThem)})
			l, logger := debugPlugin(t, apiURL(fake, tc.api), func(l *Librato) { l.API = tc.api })

			require.NoError(t, l.Write(metrics))

			var good []fakeKey
			for _, k := range want {
				if !bad[k] {
					good = append(good, k)
				}
			}
			requireExactlyOnceIn(t, fake, tc.api, good)
			require.Len(t, logger.Warnings(), 1, "one summary line per reason")
			require.Contains(t, logger.Warnings()[0], `Dropped 3 measurement(s) Librato rejected: "value value is not accepted here"`)
			extra := len(fake.Requests()) - 10
			// Halving to a single takes 2 requests per level (9 levels for
			// 300); the evidence rule's second rejection adds one per bad
			// measurement, and a control request at most one per Write.
			require.LessOrEqual(t, extra, 3*(2*9+1)+1, "isolation must take a bounded number of requests")
		})
	}
}

// rejectMeasurements answers 400 to any request holding one of the bad
// measurements, like Librato rejecting a whole request for one invalid
// measurement. When namesThem, the error names the metric the way each API
// was seen to: inside "params" (legacy) or beside it (tagged).
func rejectMeasurements(bad map[fakeKey]bool, namesThem bool) func(int, *fakelibrato.Received) fakelibrato.Action {
	reject := func(name string, inParams bool) fakelibrato.Action {
		params, beside := `{"value":["value is not accepted here"]}`, ""
		if namesThem && inParams {
			params = fmt.Sprintf(`{"value":["value is not accepted here"],"name":%q}`, name)
		} else if namesThem {
			beside = fmt.Sprintf(`,"name":%q`, name)
		}
		body := fmt.Sprintf(`{"errors":{"params":%s%s}}`, params, beside)
		return fakelibrato.Action{Status: http.StatusBadRequest, Body: []byte(body)}
	}
	return func(_ int, r *fakelibrato.Received) fakelibrato.Action {
		for _, g := range r.Gauges {
			if bad[fakeKey{g.Name, g.Source, g.MeasureTime}] {
				return reject(g.Name, true)
			}
		}
		for _, m := range r.Measurements {
			if bad[fakeKey{m.Name, m.Tags["host"], m.Time}] {
				return reject(m.Name, false)
			}
		}
		return fakelibrato.Action{}
	}
}

// TestTransientFailuresNeverDuplicate covers a 503 on the 2nd request and a
// connection reset on the 3rd, both when the flush retries by itself and
// when it has no retry budget and Telegraf's next flush must finish the job.
func TestTransientFailuresNeverDuplicate(t *testing.T) {
	for _, tc := range []struct {
		api    string
		budget time.Duration
	}{{apiLegacy, 5 * time.Second}, {apiLegacy, 0}, {apiTagged, 5 * time.Second}, {apiTagged, 0}} {
		budget := tc.budget
		t.Run(fmt.Sprintf("%s, retry_budget=%s", tc.api, budget), func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
				switch n {
				case 2:
					return fakelibrato.Action{Status: http.StatusServiceUnavailable, Body: []byte(`{"errors":{"system":["maintenance"]}}`)}
				case 3:
					return fakelibrato.Action{Reset: true}
				}
				return fakelibrato.Action{}
			}})
			l, _ := debugPlugin(t, apiURL(fake, tc.api), func(l *Librato) {
				l.API = tc.api
				l.RetryBudget = config.Duration(budget)
				l.ConcurrentWrites = 2
			})
			out := runningOutput(t, l)
			metrics, want := workload(1000)
			for _, m := range metrics {
				out.AddMetric(m)
			}
			err := out.Write()
			if budget == 0 {
				require.Error(t, err, "without retry budget the flush fails")
				require.Positive(t, out.BufferLength(), "Telegraf keeps the metrics")
				for range 3 { // Telegraf's next flushes
					if err = out.Write(); err == nil {
						break
					}
				}
				require.NoError(t, err, "Telegraf's retries")
			} else {
				require.NoError(t, err)
			}
			require.Zero(t, out.BufferLength())
			requireExactlyOnceIn(t, fake, tc.api, want)
		})
	}
}

func runningOutput(t *testing.T, l *Librato) *models.RunningOutput {
	out, err := models.NewRunningOutput(l, &models.OutputConfig{Name: "librato"}, 100_000, 100_000)
	require.NoError(t, err)
	return out
}

func TestRetryAfterHoldsEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	var blockedAt time.Time
	fake := newFake(t, fakelibrato.Options{Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
		mu.Lock()
		defer mu.Unlock()
		arrivals = append(arrivals, time.Now())
		if n == 1 {
			blockedAt = time.Now()
			return fakelibrato.Action{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}},
				Body: []byte(`{"request_time":1,"error":"You have hit the API limit for measurements [measure:raw_rate]."}`)}
		}
		return fakelibrato.Action{}
	}})
	l, _ := debugPlugin(t, fake.LegacyURL(), func(l *Librato) { l.ConcurrentWrites = 1 })
	metrics, want := workload(500)

	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	mu.Lock()
	defer mu.Unlock()
	for _, at := range arrivals[1:] {
		require.GreaterOrEqual(t, at.Sub(blockedAt), time.Second, "a request was sent while Librato asked to wait")
	}
}

// TestRetryAfterHoldsConcurrentRequests: with requests in flight when the
// 429 arrives, none is sent after it until the wait is over.
func TestRetryAfterHoldsConcurrentRequests(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	var blockedAt time.Time
	fake := newFake(t, fakelibrato.Options{Latency: 20 * time.Millisecond, Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
		mu.Lock()
		defer mu.Unlock()
		arrivals = append(arrivals, time.Now())
		if n == 1 {
			blockedAt = time.Now()
			return fakelibrato.Action{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}}
		}
		return fakelibrato.Action{}
	}})
	// 300 requests of 20 measurements at 20 ms each keep 4 workers busy
	// for well over the second of waiting.
	l, _ := debugPlugin(t, fake.LegacyURL(), func(l *Librato) {
		l.ConcurrentWrites = 4
		l.MeasurementsPerRequest = 20
	})
	metrics, want := workload(2000)

	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	mu.Lock()
	defer mu.Unlock()
	for _, at := range arrivals[1:] {
		since := at.Sub(blockedAt)
		// Requests already on the wire when the 429 left may still land
		// right after it; nothing may start later until the second is over.
		require.False(t, since > 200*time.Millisecond && since < time.Second, "request %s after the 429", since)
	}
}

func TestUnresponsiveAPIReturnsWithinBudget(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Hang: true}
	}})
	l, _ := debugPlugin(t, fake.LegacyURL(), func(l *Librato) {
		l.Timeout = config.Duration(300 * time.Millisecond)
		l.RetryBudget = config.Duration(time.Second)
	})
	metrics, _ := workload(3000)

	start := time.Now()
	err := l.Write(metrics)
	elapsed := time.Since(start)
	require.ErrorContains(t, err, "stay buffered")
	require.Less(t, elapsed, 3*time.Second, "budget 1s + one timeout of 300ms, with slack")
	requireNoCredentials(t, err.Error())
}

func TestHugeErrorBodyIsNotRead(t *testing.T) {
	chunk := []byte(strings.Repeat("x", 64<<10))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		for range (200 << 20) / len(chunk) { // 200 MB, streamed
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	l, _ := debugPlugin(t, srv.URL, func(l *Librato) { l.RetryBudget = 0 })
	metrics, _ := workload(10)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := l.Write(metrics)
	runtime.ReadMemStats(&after)

	require.ErrorContains(t, err, "502")
	require.Less(t, len(err.Error()), 1500, "error strings stay short")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "the body must not be read into memory")
}

func TestAccepted202IsSuccess(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: http.StatusAccepted}
	}})
	l, _ := debugPlugin(t, fake.LegacyURL())
	metrics, _ := workload(10)
	require.NoError(t, l.Write(metrics))
	require.Len(t, fake.Requests(), 1)
}

// TestSettingErrors: 401 and other 403s stop the flush at once with an
// error naming the setting to fix; nothing is retried in a loop.
func TestSettingErrors(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		body      string
		tagged    bool
		wantError string
	}{
		{"bad credentials", 401, `{"errors":{"request":["Credentials are required to access this resource."]}}`, false, "check api_user"},
		{"read-only token", 403, `{"errors":{"request":["read-only token"]}}`, false, "record access"},
		{"tags not enabled", 403, `{"errors":["Tag based measurements are not enabled for this account."]}`, true, `api = "legacy"`},
		{"wrong path", 404, `{"errors":{"request":["not found"]}}`, false, "check the path of api_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
				return fakelibrato.Action{Status: tc.status, Body: []byte(tc.body)}
			}})
			url := fake.LegacyURL()
			l, _ := debugPlugin(t, url, func(l *Librato) {
				l.ConcurrentWrites = 1
				if tc.tagged {
					l.API = apiTagged
					l.APIURL = fake.TaggedURL()
				}
			})
			metrics, _ := workload(1000)
			err := l.Write(metrics)
			require.ErrorContains(t, err, tc.wantError)
			require.Len(t, fake.Requests(), 1, "no retry loop")
			requireNoCredentials(t, err.Error())
		})
	}
}

func TestTaggedDisabledAccount(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	l, _ := debugPlugin(t, fake.TaggedURL(), func(l *Librato) { l.API = apiTagged })
	metrics, _ := workload(5)
	require.ErrorContains(t, l.Write(metrics), `set api = "legacy"`)
}

func TestRateLimit403IsRetried(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
		if n == 1 {
			return fakelibrato.Action{Status: http.StatusForbidden,
				Body: []byte(`{"request_time":1,"error":"You have hit the API limit for measurements [measure:raw_rate]. Contact: x to adjust this limit."}`)}
		}
		return fakelibrato.Action{}
	}})
	l, _ := debugPlugin(t, fake.LegacyURL())
	metrics, want := workload(50)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
}

func TestOversizedRequestIsSplit(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{MaxBodyBytes: 8 << 10})
	l, _ := debugPlugin(t, fake.LegacyURL())
	metrics, want := workload(300)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
}

// TestTooOldMeasurementsAreDropped: Librato rejects a whole request when a
// measure_time is too old and does not say which; the plugin finds them.
func TestTooOldMeasurementsAreDropped(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{MaxPast: time.Hour})
	l, logger := debugPlugin(t, fake.LegacyURL())
	metrics, want := workload(600)
	old := time.Now().Add(-2 * time.Hour)
	for i := range 5 {
		metrics = append(metrics, metric.New("cpu", map[string]string{"host": "old"},
			map[string]any{"idle": 1.0}, old.Add(time.Duration(i)*time.Second)))
	}

	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	require.Len(t, logger.Warnings(), 1, "one summary line per reason")
	require.Contains(t, logger.Warnings()[0], `Dropped 5 measurement(s) Librato rejected: "measure_time is too far in the past"`)
}

func TestCredentialsFromURLAreNeverShown(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	url := strings.Replace(fake.LegacyURL(), "http://", "http://"+strings.Replace(testUser, "@", "%40", 1)+":"+testToken+"@", 1)
	logger := newCaptureLogger()
	l := newLibrato()
	l.APIURL = url
	l.Debug = true
	l.Log = logger
	require.NoError(t, l.Init())
	require.NoError(t, l.Connect())
	metrics, want := workload(20)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	require.NotEmpty(t, logger.Messages())
	requireNoCredentials(t, logText(logger))
}

func TestCredentialsEchoedByAPIAreRedacted(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: 500, Body: []byte(`{"errors":{"system":["bad token ` + testToken + ` for ` + testUser + `"]}}`)}
	}})
	l, _ := debugPlugin(t, fake.LegacyURL(), func(l *Librato) { l.RetryBudget = 0 })
	metrics, _ := workload(5)
	err := l.Write(metrics)
	require.Error(t, err)
	requireNoCredentials(t, err.Error())
}

func TestDebugLogsRequestsAtInfoLevel(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l, logger := debugPlugin(t, fake.LegacyURL())
	metrics, _ := workload(1)
	require.NoError(t, l.Write(metrics))
	var infos []string
	for _, m := range logger.Messages() {
		if m.Level == testutil.LevelInfo {
			infos = append(infos, m.Text)
		}
	}
	require.Len(t, infos, 1, "one line per request, visible without the agent's debug mode")
	require.Contains(t, infos[0], `POST `+fake.LegacyURL()+`: 3 measurements`)
	require.Contains(t, infos[0], `{\"gauges\":[{\"name\":`, "the request body")
	require.Contains(t, infos[0], `\"name\":\"cpu.idle\",\"source\":\"host00\"`)
	require.Contains(t, infos[0], "-> 200")
}
