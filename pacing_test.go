package librato

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestPacingAvoidsTheLimit: the fake allows 20 requests a second and says
// so on every answer. A flush needing 60 requests from 4 workers would hit
// the limit at once; paced, no request is answered 429 and each window's
// budget is used again once it resets.
func TestPacingAvoidsTheLimit(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{RateLimit: 20, RateLimitWindow: time.Second, Latency: 5 * time.Millisecond})
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
		l.ConcurrentWrites = 4
		l.MeasurementsPerRequest = 20
		l.RetryBudget = config.Duration(10 * time.Second)
	})
	metrics, want := workload(400) // 1,200 gauges, 60 requests
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	for _, r := range fake.Requests() {
		require.NotEqual(t, http.StatusTooManyRequests, r.Status, "request %d hit the limit", r.N)
	}
	require.Equal(t, int64(20), l.stats.rateLimit.Get())
	require.Zero(t, l.stats.retries.Get(), "nothing needed a retry")
}

// TestAbsurdRateLimitResetIsCapped: one answer whose rate-limit header says
// the window resets in 31 years must not space requests for months: the
// reset counts as at most max_retry_after, and the pacing ends with it.
func TestAbsurdRateLimitResetIsCapped(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	target, err := url.Parse(fake.URL())
	require.NoError(t, err)
	var answers atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if answers.Add(1) == 1 {
			r.Header.Set("X-Librato-RateLimit-Std", "limit=1000,remaining=100,reset=999999999")
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	l := newPlugin(t, front.URL+"/v1/metrics", func(l *Librato) {
		l.MaxRetryAfter = config.Duration(time.Second)
		l.RetryBudget = config.Duration(time.Second)
		l.ConcurrentWrites = 1
	})
	out := runningOutput(t, l)
	metrics, want := workload(1000) // 3,000 gauges, 10 requests
	addAll(out, metrics)

	start := time.Now()
	for out.BufferLength() > 0 && time.Since(start) < 5*time.Second {
		err := out.Write()
		t.Logf("flush: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d requests reached the API", len(fake.Requests()))
	require.Zero(t, out.BufferLength(), "delivery must resume within max_retry_after (1s) + retry_budget")
	requireExactlyOnce(t, fake, want)
}

// TestAbsurdResetKeepsPacing: the first answer says the budget is nearly
// spent and resets in 31 years; the fake then allows 20 requests a second
// and says so on every answer. Staleness judged with the raw reset made
// every later answer "old news", so after max_retry_after the requests went
// out unpaced into the limit. With the capped reset they are paced again.
func TestAbsurdResetKeepsPacing(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{RateLimit: 20, RateLimitWindow: time.Second, Latency: 5 * time.Millisecond})
	target, err := url.Parse(fake.URL())
	require.NoError(t, err)
	var answers atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if answers.Add(1) == 1 {
			r.Header.Set("X-Librato-RateLimit-Std", "limit=20,remaining=1,reset=999999999")
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	l := newPlugin(t, front.URL+"/v1/metrics", func(l *Librato) {
		l.ConcurrentWrites = 4
		l.MeasurementsPerRequest = 20
		l.MaxRetryAfter = config.Duration(time.Second)
		l.RetryBudget = config.Duration(10 * time.Second)
	})
	metrics, want := workload(400) // 1,200 gauges, 60 requests
	start := time.Now()
	require.NoError(t, l.Write(metrics))
	took := time.Since(start)
	requireExactlyOnce(t, fake, want)
	limited := 0
	for _, r := range fake.Requests() {
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	t.Logf("| absurd rate-limit reset, then 20 requests/s | %d requests | %d answered 429 | %d retries | %d delivered | Write %s |",
		len(fake.Requests()), limited, l.stats.retries.Get(), len(want), took.Round(time.Millisecond))
	require.Zero(t, limited, "paced again once max_retry_after has passed")
}
