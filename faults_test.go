package librato

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// These tests are the "drop only on proof" contract: endpoints that fail the
// way real networks do, and exactly what arrives, how often, and how many
// log lines it costs.

// outageFault answers every request with a while on is set.
func outageFault(on *atomic.Bool, a fakelibrato.Action) func(int, *fakelibrato.Received) fakelibrato.Action {
	return func(int, *fakelibrato.Received) fakelibrato.Action {
		if on.Load() {
			return a
		}
		return fakelibrato.Action{}
	}
}

// flushUntilEmpty runs Telegraf's next flushes until the buffer is empty and
// returns how many it took.
func flushUntilEmpty(t *testing.T, out *models.RunningOutput, limit int) int {
	t.Helper()
	for n := 1; n <= limit; n++ {
		err := out.Write()
		t.Logf("flush %d: %v", n, err)
		if err == nil && out.BufferLength() == 0 {
			return n
		}
	}
	t.Fatalf("buffer still holds %d metrics after %d flushes", out.BufferLength(), limit)
	return 0
}

// reportRow logs one row of the table the closing note quotes:
// go test -run 'TestOutages|TestOneRejection|TestRedirects|TestHanging|TestAbsurd|TestInvalidBefore' -v . | grep '^    .*| '
func reportRow(t *testing.T, fake *fakelibrato.Server, logLines int, dropped int64, longestWrite time.Duration) {
	t.Helper()
	stored := map[fakeKey]int{}
	for _, g := range fake.Gauges() {
		stored[fakeKey{g.Name, g.Source, g.MeasureTime}]++
	}
	dups := 0
	for _, n := range stored {
		dups += n - 1
	}
	t.Logf("| %s | %d requests | %d log lines | %d delivered | %d duplicated | %d dropped | longest Write %s |",
		t.Name(), len(fake.Requests()), logLines, len(stored), dups, dropped, longestWrite.Round(time.Millisecond))
}

// timedWrite is out.Write, timed.
func timedWrite(out *models.RunningOutput, longest *time.Duration) error {
	start := time.Now()
	err := out.Write()
	*longest = max(*longest, time.Since(start))
	return err
}

func addAll(out *models.RunningOutput, metrics []telegraf.Metric) {
	for _, m := range metrics {
		out.AddMetric(m)
	}
}

// TestOutagesKeepEverything: a proxy answering 400 or 413 to everything for
// two seconds costs no measurement, few requests and few log lines.
func TestOutagesKeepEverything(t *testing.T) {
	html := []byte(`<html><head><title>400 Bad Request</title></head><body><center>nginx</center></body></html>`)
	cases := []struct {
		name string
		a    fakelibrato.Action
		// requests one failed flush may make, per batch
		perBatch int
	}{
		{"400 HTML", fakelibrato.Action{Status: 400, Body: html, Header: http.Header{"Content-Type": {"text/html"}}}, 1},
		{"400 empty", fakelibrato.Action{Status: 400}, 1},
		{"400 foreign JSON", fakelibrato.Action{Status: 400, Body: []byte(`{"error":"blocked by policy","code":"WAF-17"}`)}, 1},
		{"413 HTML", fakelibrato.Action{Status: 413, Body: html}, 1 + splitRequestsPerBatch + splitRequests},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var outage atomic.Bool
			outage.Store(true)
			fake := newFake(t, fakelibrato.Options{Fault: outageFault(&outage, tc.a)})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
			out := runningOutput(t, l)
			metrics, want := workload(2000) // 6,000 gauges, 20 batches
			addAll(out, metrics)

			failed := 0
			var longest time.Duration
			for start := time.Now(); time.Since(start) < 2*time.Second; failed++ {
				err := timedWrite(out, &longest)
				require.Error(t, err, "a flush during the outage fails")
				require.NotContains(t, err.Error(), testToken)
				time.Sleep(100 * time.Millisecond)
			}
			during := len(fake.Requests())
			require.Empty(t, fake.Gauges())
			require.Zero(t, l.stats.dropped[reasonRejected].Get(), "nothing is dropped for a proxy's answer")
			require.LessOrEqual(t, during, failed*20*tc.perBatch, "requests per failed flush stay a small multiple of the batches")
			require.LessOrEqual(t, len(logger.Messages()), 1, "the plugin logs next to nothing; the flush error says it all")

			outage.Store(false)
			flushes := flushUntilEmpty(t, out, 3)
			requireExactlyOnce(t, fake, want)
			t.Logf("%s: %d failed flushes, %d requests during the outage (%.1f per flush), delivered in %d flush(es)",
				tc.name, failed, during, float64(during)/float64(failed), flushes)
			reportRow(t, fake, len(logger.Messages()), l.stats.dropped[reasonRejected].Get(), longest)
		})
	}
}

// TestOneRejectionPerBatch: one measurement Librato rejects in each of 40
// batches. The good ones all arrive once within a few flushes, the bad ones
// are dropped with their reason, in one line per flush.
func TestOneRejectionPerBatch(t *testing.T) {
	for _, namesThem := range []bool{false, true} {
		t.Run(fmt.Sprintf("error names the metric=%v", namesThem), func(t *testing.T) {
			metrics, want := workload(4000) // 12,000 gauges, 40 batches
			bad := map[fakeKey]bool{}
			for i := 0; i < 40; i++ {
				bad[want[i*300+137]] = true
			}
			fake := newFake(t, fakelibrato.Options{Fault: rejectMeasurements(bad, namesThem)})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
			out := runningOutput(t, l)
			addAll(out, metrics)

			flushes := flushUntilEmpty(t, out, 6)

			var good []fakeKey
			for _, k := range want {
				if !bad[k] {
					good = append(good, k)
				}
			}
			requireExactlyOnce(t, fake, good)
			require.Equal(t, int64(40), l.stats.dropped[reasonRejected].Get())
			for _, w := range logger.Warnings() {
				require.Contains(t, w, `Librato rejected: "value value is not accepted here"`)
			}
			require.LessOrEqual(t, len(logger.Messages()), flushes, "at most one line per flush")
			t.Logf("%d flushes, %d requests, %d log lines", flushes, len(fake.Requests()), len(logger.Messages()))
			reportRow(t, fake, len(logger.Messages()), l.stats.dropped[reasonRejected].Get(), 0)
		})
	}
}

// TestRejectionNeedsAnEndpointThatAccepts: the first request ever is a
// single measurement Librato rejects. That is not yet proof: the plugin
// sends a control measurement, and only its acceptance, followed by a
// second rejection, drops the measurement. An endpoint that rejects the
// control too proves nothing, and the measurement is kept.
func TestRejectionNeedsAnEndpointThatAccepts(t *testing.T) {
	ts := time.Now().Add(-time.Minute).Truncate(time.Second)
	poison := metric.New("cpu", map[string]string{"host": "bad"}, map[string]any{"idle": 1.0}, ts)
	goodOne := metric.New("cpu", map[string]string{"host": "good"}, map[string]any{"idle": 2.0}, ts)
	t.Run("control accepted", func(t *testing.T) {
		fake := newFake(t, fakelibrato.Options{Fault: rejectMeasurements(map[fakeKey]bool{{"cpu.idle", "bad", ts.Unix()}: true}, true)})
		l := newPlugin(t, fake.LegacyURL())
		require.NoError(t, l.Write([]telegraf.Metric{poison}))
		require.Equal(t, int64(1), l.stats.dropped[reasonRejected].Get())
		require.Equal(t, int64(1), l.stats.controls.Get())
		require.Len(t, fake.Requests(), 3, "R1, the control, R2")
		controls := 0
		for _, g := range fake.Gauges() {
			require.Equal(t, delivery.ControlName, g.Name)
			require.Equal(t, "telegraf-librato", g.Source)
			controls++
		}
		require.Equal(t, 1, controls)
	})
	t.Run("control rejected too", func(t *testing.T) {
		var rejectAll atomic.Bool
		rejectAll.Store(true)
		fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
			if rejectAll.Load() {
				return fakelibrato.Action{Status: http.StatusBadRequest, Body: []byte(`{"errors":{"params":{"value":["is not accepted here"]}}}`)}
			}
			return fakelibrato.Action{}
		}})
		l := newPlugin(t, fake.LegacyURL())
		err := l.Write([]telegraf.Metric{poison, goodOne})
		require.ErrorContains(t, err, "not even a control measurement")
		require.Zero(t, l.stats.dropped[reasonRejected].Get())
		rejectAll.Store(false)
		require.NoError(t, l.Write([]telegraf.Metric{poison, goodOne}))
		requireExactlyOnce(t, fake, []fakeKey{{"cpu.idle", "bad", ts.Unix()}, {"cpu.idle", "good", ts.Unix()}})
	})
}

// TestRedirectsAreNotFollowed: for two seconds the endpoint redirects; the
// target never sees a request, the flush names it, and everything arrives
// once the endpoint is back.
func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var targetHits atomic.Int64
			target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, _ *http.Request) {
				targetHits.Add(1)
			}))
			t.Cleanup(target.Close)
			var outage atomic.Bool
			outage.Store(true)
			fake := newFake(t, fakelibrato.Options{Fault: outageFault(&outage, fakelibrato.Action{
				Status: status, Header: http.Header{"Location": {target.URL + "/v1/metrics"}}})})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
			out := runningOutput(t, l)
			metrics, want := workload(500)
			addAll(out, metrics)

			var longest time.Duration
			for start := time.Now(); time.Since(start) < 2*time.Second; {
				err := timedWrite(out, &longest)
				require.ErrorContains(t, err, fmt.Sprintf("librato answered %d, a redirect to %q, which is not followed: set api_url",
					status, target.URL+"/v1/metrics"))
				time.Sleep(200 * time.Millisecond)
			}
			outage.Store(false)
			flushUntilEmpty(t, out, 2)
			requireExactlyOnce(t, fake, want)
			require.Zero(t, targetHits.Load(), "no request may reach the redirect target")
			reportRow(t, fake, len(logger.Messages()), l.stats.dropped[reasonRejected].Get(), longest)
		})
	}
}

// TestHangingBodiesAreBounded: answers whose bodies never finish; every
// Write returns within timeout + retry_budget + 1s, nothing is dropped, and
// everything arrives once the endpoint heals. The last case is the issue's:
// 300 measurements at default settings.
func TestHangingBodiesAreBounded(t *testing.T) {
	const short, budget = 500 * time.Millisecond, time.Second
	cases := []struct {
		name             string
		status           int
		timeout, budget  time.Duration
		metrics, flushes int
	}{
		{"400", 400, short, budget, 3000, 3},
		{"503", 503, short, budget, 3000, 3},
		{"400 at defaults, 300 measurements", 400, time.Duration(defaultTimeout), time.Duration(defaultRetryBudget), 100, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hang atomic.Bool
			hang.Store(true)
			fake := newFake(t, fakelibrato.Options{Fault: outageFault(&hang, fakelibrato.Action{Status: tc.status, HangBody: true,
				Body: []byte(`{"errors":{"params":{"value":["is not a number"]}}}` + strings.Repeat(" ", 4096))})})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
				l.Log = logger
				l.Timeout = config.Duration(tc.timeout)
				l.RetryBudget = config.Duration(tc.budget)
			})
			out := runningOutput(t, l)
			metrics, want := workload(tc.metrics)
			addAll(out, metrics)
			var longest time.Duration
			for range tc.flushes {
				require.Error(t, timedWrite(out, &longest))
			}
			require.Less(t, longest, tc.timeout+tc.budget+time.Second)
			require.Zero(t, l.stats.dropped[reasonRejected].Get(), "a body that never finishes proves nothing")

			hang.Store(false)
			flushUntilEmpty(t, out, 2)
			requireExactlyOnce(t, fake, want)
			reportRow(t, fake, len(logger.Messages()), 0, longest)
		})
	}
}

// TestAbsurdRetryAfter: one Retry-After of 31 years pauses for
// max_retry_after, once logged, and delivery then resumes.
func TestAbsurdRetryAfter(t *testing.T) {
	var first atomic.Bool
	first.Store(true)
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		if first.CompareAndSwap(true, false) {
			return fakelibrato.Action{Status: 429, Header: http.Header{"Retry-After": {"999999999"}}}
		}
		return fakelibrato.Action{}
	}})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
		l.Log = logger
		l.MaxRetryAfter = config.Duration(time.Second)
		l.RetryBudget = 0
		l.ConcurrentWrites = 1
	})
	out := runningOutput(t, l)
	metrics, want := workload(1000)
	addAll(out, metrics)

	start := time.Now()
	require.Error(t, out.Write(), "the first flush meets the 429")
	for out.BufferLength() > 0 {
		require.Less(t, time.Since(start), 5*time.Second, "delivery resumes within the cap")
		if err := out.Write(); err != nil {
			t.Logf("flush during the pause: %v", err) // expected until the pause ends
		}
		time.Sleep(100 * time.Millisecond)
	}
	requireExactlyOnce(t, fake, want)
	require.Len(t, logger.Warnings(), 1)
	require.Contains(t, logger.Warnings()[0], "pausing for max_retry_after (1s) instead")
	reportRow(t, fake, len(logger.Messages()), 0, time.Since(start))
}

// TestInvalidBeforeSending: empty names and times at or before the epoch
// are never sent, they are counted, and the rest arrives.
func TestInvalidBeforeSending(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
	metrics, want := workload(100)
	metrics = append(metrics,
		metric.New("", map[string]string{"host": "h"}, map[string]any{"value": 1.0}, time.Now()),
		metric.New("cpu", map[string]string{"host": "h"}, map[string]any{"idle": 1.0, "user": 2}, time.Unix(0, 0)),
		metric.New("cpu", map[string]string{"host": "h"}, map[string]any{"idle": 1.0}, time.Unix(-5, 0)),
	)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	require.Equal(t, int64(1), l.stats.dropped[reasonEmptyName].Get())
	require.Equal(t, int64(3), l.stats.dropped[reasonInvalidTime].Get())
	text := logText(logger)
	require.Contains(t, text, "Dropped 1 measurement(s) (empty_name)")
	require.Contains(t, text, "Dropped 3 measurement(s) (invalid_time)")
	reportRow(t, fake, len(logger.Messages()), 4, 0)
}

// TestTaggedPartialSuccessIsReported: a 202 whose summary counts failures
// is reported once per flush and counted; nothing is resent.
func TestTaggedPartialSuccessIsReported(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: 202, Body: []byte(`{"measurements":{"summary":{"total":300,"accepted":298,"failed":2,"filtered":0}}}`)}
	}})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.TaggedURL(), func(l *Librato) {
		l.API = apiTagged
		l.Log = logger
	})
	metrics, _ := workload(300) // 900 measurements, 3 requests
	require.NoError(t, l.Write(metrics))
	require.Len(t, fake.Requests(), 3)
	require.Equal(t, int64(6), l.stats.apiFailed.Get())
	require.Len(t, logger.Warnings(), 1)
	require.Contains(t, logger.Warnings()[0], "reported 6 failed measurement(s)")
}

func TestInitErrorsNeverShowTheUser(t *testing.T) {
	l := newLibrato()
	l.APIURL = "ftp://ops%40example.com:tok@metrics-api.librato.com/v1/metrics"
	l.Log = newCaptureLogger()
	err := l.Init()
	require.ErrorContains(t, err, "invalid api_url")
	require.NotContains(t, err.Error(), "ops")
	require.NotContains(t, err.Error(), "tok")
}

// TestShortTimeoutWithoutRetryBudgetStillSends: with timeout <= 1s and
// retry_budget = 0, every request that can start within the Write's
// window is sent; no setting Init accepts may keep a healthy API from
// getting anything.
func TestShortTimeoutWithoutRetryBudgetStillSends(t *testing.T) {
	for _, timeout := range []time.Duration{500 * time.Millisecond, time.Second} {
		t.Run(timeout.String(), func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
				l.Timeout = config.Duration(timeout)
				l.RetryBudget = 0
			})
			metrics, want := workload(10)
			var err error
			for range 3 { // Telegraf's next flushes
				if err = l.Write(metrics); err == nil {
					break
				}
			}
			require.NoError(t, err, "a healthy API must take the metrics")
			requireExactlyOnce(t, fake, want)
		})
	}
}

// TestRedirectLocationIsRedacted: a gateway redirecting to a URL carrying
// the credentials (a login page with user and token in the query) must not
// put them in the flush's error.
func TestRedirectLocationIsRedacted(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: http.StatusFound, Header: http.Header{
			"Location": {"https://sso.example.com/login/" + testUser + "?token=" + testToken}}}
	}})
	l := newPlugin(t, fake.LegacyURL())
	metrics, _ := workload(10)
	err := l.Write(metrics)
	require.Error(t, err)
	t.Logf("error: %v", err)
	requireNoCredentials(t, err.Error())
}
