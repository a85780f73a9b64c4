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

func TestPaceInterval(t *testing.T) {
	rl := func(limit, remaining int64, reset time.Duration) rateLimit {
		return rateLimit{limit: limit, remaining: remaining, reset: reset, ok: true}
	}
	cases := []struct {
		name     string
		rl       rateLimit
		cost     float64
		inFlight int
		interval time.Duration
		pause    time.Duration
	}{
		{"no header", rateLimit{}, 1, 0, 0, 0},
		{"more than half left: no pacing", rl(100, 50, 10*time.Second), 1, 0, 0, 0},
		{"a quarter left: half the even spread", rl(100, 25, 10*time.Second), 1, 5, 10 * time.Second / 20 / 2, 0},
		{"little left: nearly the even spread", rl(100, 5, 10*time.Second), 1, 0, time.Duration(float64(10*time.Second) / 5 * 0.9), 0},
		{"no more left than in flight: wait for the reset", rl(100, 4, 10*time.Second), 1, 4, 0, 10 * time.Second},
		{"spent", rl(100, 0, 3*time.Second), 1, 0, 0, 3 * time.Second},
		{"a request costs 300 measurements", rl(30000, 3000, 60*time.Second), 300, 0, time.Duration(float64(60*time.Second) / 10 * 0.8), 0},
		{"measurement budget nearly spent", rl(30000, 600, 60*time.Second), 300, 2, 0, 60 * time.Second},
		{"an absurd reset counts as max_retry_after", rl(100, 0, 999999999*time.Second), 1, 0, 0, time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			interval, pause := paceInterval(tc.rl, tc.cost, tc.inFlight, time.Hour)
			require.InDelta(t, float64(tc.interval), float64(interval), float64(time.Millisecond))
			require.Equal(t, tc.pause, pause)
		})
	}
}

func TestLearnCost(t *testing.T) {
	a := rateLimit{limit: 3000, remaining: 2700, reset: 50 * time.Second, ok: true}
	b := rateLimit{limit: 3000, remaining: 2400, reset: 49 * time.Second, ok: true}
	require.InDelta(t, 0.8*1+0.2*300, learnCost(1, a, b), 1e-9, "remaining fell by 300")
	require.InDelta(t, 1.0, learnCost(1, b, a), 1e-9, "out of order: ignored")
	newWindow := rateLimit{limit: 3000, remaining: 2990, reset: 60 * time.Second, ok: true}
	require.InDelta(t, 1.0, learnCost(1, b, newWindow), 1e-9, "a new window: ignored")
	require.InDelta(t, 1.0, learnCost(1, rateLimit{}, b), 1e-9)
}

func TestStaleBudget(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	last := rateLimit{limit: 20, remaining: 3, reset: time.Second, ok: true}
	more := rateLimit{limit: 20, remaining: 9, reset: time.Second, ok: true}
	require.True(t, staleBudget(last, now, more, now.Add(100*time.Millisecond)), "an older answer arriving late")
	require.False(t, staleBudget(last, now, more, now.Add(time.Second)), "the window may have reset")
	require.False(t, staleBudget(more, now, last, now), "less left is always news")
	require.False(t, staleBudget(rateLimit{}, now, more, now))
}

func TestTightestAndSlots(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	h := http.Header{
		"X-Librato-Ratelimit-Std": {"limit=100,remaining=80,reset=30"},
		"X-Librato-Ratelimit-Agg": {"limit=1000,remaining=100,reset=20"},
	}
	require.Equal(t, int64(100), tightest(h, now).remaining, "10% left beats 80%")
	require.False(t, tightest(http.Header{}, now).ok)

	slot, next := reserveSlot(now, time.Time{}, time.Second)
	require.Equal(t, now, slot)
	slot, next = reserveSlot(now, next, time.Second)
	require.Equal(t, now.Add(time.Second), slot, "the second request a second later")
	require.Equal(t, now.Add(2*time.Second), next)
}

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
