package delivery

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	now := testEpoch()
	rl := func(remaining int64, reset time.Duration) rateLimit {
		return rateLimit{limit: 20, remaining: remaining, reset: reset, ok: true}
	}
	const maxReset = time.Minute
	cases := []struct {
		name      string
		last, cur rateLimit
		after     time.Duration
		want      bool
	}{
		{"an older answer arriving late", rl(3, time.Second), rl(9, time.Second), 100 * time.Millisecond, true},
		{"the window may have reset", rl(3, time.Second), rl(9, time.Second), time.Second, false},
		{"less left is always news", rl(9, time.Second), rl(3, time.Second), 0, false},
		{"no earlier budget", rateLimit{}, rl(9, time.Second), 0, false},
		{"an absurd reset is judged as max_retry_after: within it, stale", rl(3, 999999999*time.Second), rl(9, time.Second), 30 * time.Second, true},
		{"an absurd reset is judged as max_retry_after: past it, news", rl(3, 999999999*time.Second), rl(9, time.Second), maxReset, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, staleBudget(tc.last, now, tc.cur, now.Add(tc.after), maxReset))
		})
	}
}

// TestAbsurdResetDoesNotEndPacing: after one answer whose budget "resets in
// 31 years", a later answer (past max_retry_after) with a quarter of the
// budget left must pace again; judged with the raw reset it was stale for
// good, and requests went out unpaced into the limit.
func TestAbsurdResetDoesNotEndPacing(t *testing.T) {
	clock := &fakeClock{now: testEpoch()}
	a := newAdmission(clock, time.Minute, nil)
	h := func(v string) http.Header { return http.Header{"X-Librato-Ratelimit-Std": {v}} }
	a.observe(h("limit=1000,remaining=100,reset=999999999"), clock.Now())
	clock.now = clock.now.Add(2 * time.Minute) // past max_retry_after
	a.observe(h("limit=1000,remaining=250,reset=30"), clock.Now())

	for range 3 {
		tk, err := a.admit(t.Context(), clock.Now().Add(time.Minute), clock.Now().Add(time.Minute))
		require.NoError(t, err)
		a.done(tk)
	}
	// A quarter left: half the even spread of 30 s over 250 requests.
	want := time.Duration(float64(30*time.Second) / 250 * 0.5)
	require.Len(t, clock.slept, 2, "the first request starts at once, the next two wait for their slots")
	for _, d := range clock.slept {
		require.InDelta(t, float64(want), float64(d), float64(time.Millisecond))
	}
	t.Logf("| absurd rate-limit reset, then 25%% left | 3 requests | paced %v apart (unpaced before the fix) |", clock.slept[0])
}

func TestTightestAndSlots(t *testing.T) {
	now := testEpoch()
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
