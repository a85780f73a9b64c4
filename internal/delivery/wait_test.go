package delivery

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/testclock"
)

// fakeClock advances only when someone sleeps on it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	onWake func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// WithDeadline never reaches a real timer: the fake time passes only when
// someone sleeps, so a deadline still ahead can only end by cancellation.
func (c *fakeClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return testclock.WithDeadline(ctx, c.Now(), t)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	wake := c.onWake
	c.mu.Unlock()
	if wake != nil {
		wake()
	}
	return nil
}

func TestBackoffDelay(t *testing.T) {
	cases := []struct {
		attempt  int
		jitter   float64
		min, max time.Duration
	}{
		{0, 0, 50 * time.Millisecond, 50 * time.Millisecond},
		{0, 0.999, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{4, 0.5, 1200 * time.Millisecond, 1200 * time.Millisecond},
		{5, 0, time.Second, time.Second}, // capped at backoffMax
		{1000, 0.999, time.Second, 2 * time.Second},
	}
	for _, tc := range cases {
		d := backoffDelay(tc.attempt, tc.jitter)
		require.GreaterOrEqual(t, d, tc.min, "attempt %d", tc.attempt)
		require.LessOrEqual(t, d, tc.max, "attempt %d", tc.attempt)
	}
}

func TestClampPause(t *testing.T) {
	cases := []struct {
		hint, limit, want time.Duration
		clamped           bool
	}{
		{0, time.Minute, 0, false},
		{-time.Second, time.Minute, 0, false},
		{30 * time.Second, time.Minute, 30 * time.Second, false},
		{time.Minute, time.Minute, time.Minute, false},
		{999999999 * time.Second, time.Minute, time.Minute, true},
	}
	for _, tc := range cases {
		got, clamped := clampPause(tc.hint, tc.limit)
		require.Equal(t, tc.want, got, "hint %s", tc.hint)
		require.Equal(t, tc.clamped, clamped, "hint %s", tc.hint)
	}
}

func TestRetryHint(t *testing.T) {
	now := testEpoch()
	cases := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {" 5 "}}, 5 * time.Second},
		{"absurd seconds do not overflow", http.Header{"Retry-After": {"999999999999999999"}}, secondsToDuration(999999999999999999)},
		{"negative is ignored", http.Header{"Retry-After": {"-3"}}, 0},
		{"HTTP date", http.Header{"Retry-After": {now.Add(time.Minute).Format(http.TimeFormat)}}, time.Minute},
		{"HTTP date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"spent std budget, relative reset", http.Header{"X-Librato-Ratelimit-Std": {"limit=300,remaining=0,reset=20"}}, 20 * time.Second},
		{
			"spent agg budget, absolute reset",
			http.Header{"X-Librato-Ratelimit-Agg": {"limit=300, remaining=0, reset=" + strconv.FormatInt(now.Add(45*time.Second).Unix(), 10)}},
			45 * time.Second,
		},
		{"budget left", http.Header{"X-Librato-Ratelimit-Std": {"limit=300,remaining=3,reset=20"}}, 0},
		{"the longer of both", http.Header{
			"X-Librato-Ratelimit-Std": {"limit=300,remaining=0,reset=20"},
			"X-Librato-Ratelimit-Agg": {"limit=300,remaining=0,reset=30"},
		}, 30 * time.Second},
		{"Retry-After wins", http.Header{"Retry-After": {"2"}, "X-Librato-Ratelimit-Std": {"limit=300,remaining=0,reset=20"}}, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, retryHint(tc.header, now))
		})
	}
}

func TestNextGateStep(t *testing.T) {
	now := testEpoch()
	sendBy := now.Add(5 * time.Second)
	cases := []struct {
		name string
		st   gateState
		step gateStep
		d    time.Duration
	}{
		{"no pause", gateState{}, stepSend, 0},
		{"pause within the retry window", gateState{until: now.Add(2 * time.Second), probeDue: true}, stepSleep, 2 * time.Second},
		{"pause past the retry window", gateState{until: now.Add(time.Minute), probeDue: true}, stepGiveUp, time.Minute},
		{"pause over: first request probes", gateState{until: now, probeDue: true}, stepProbe, 0},
		{"probe on the wire: the others wait", gateState{until: now.Add(-time.Second), probeDue: true, probeOut: true}, stepAwaitProbe, 0},
		{"probe answered well", gateState{until: now.Add(-time.Second)}, stepSend, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step, d := nextGateStep(tc.st, now, sendBy)
			require.Equal(t, tc.step, step)
			require.Equal(t, tc.d, d)
		})
	}
}

// TestGateClampsAndProbes: an absurd Retry-After pauses for the cap, logged
// once; then one probe goes alone while the others wait for its answer.
func TestGateClampsAndProbes(t *testing.T) {
	clock := &fakeClock{now: testEpoch()}
	var clamps []time.Duration
	g := &rateGate{clock: clock, maxPause: time.Minute, onClamp: func(hint, _ time.Duration) { clamps = append(clamps, hint) }}

	g.pause(999999999 * time.Second)
	require.Equal(t, []time.Duration{999999999 * time.Second}, clamps)

	_, err := g.wait(context.Background(), clock.Now().Add(5*time.Second))
	require.ErrorIs(t, err, errPaused, "a flush with 5s of retry window gives up at once")

	probe, err := g.wait(context.Background(), clock.Now().Add(2*time.Minute))
	require.NoError(t, err)
	require.True(t, probe, "the first request after the pause probes")
	require.Equal(t, []time.Duration{time.Minute}, clock.slept, "slept the cap, not the hint")

	// While the probe is out, another request waits for its answer.
	type waited struct {
		probe bool
		err   error
	}
	released := make(chan waited)
	go func() {
		p, err := g.wait(context.Background(), clock.Now().Add(time.Minute))
		released <- waited{p, err}
	}()
	select {
	case <-released:
		t.Fatal("a second request went while the probe was on the wire")
	case <-time.After(50 * time.Millisecond):
	}
	g.probeAnswered()
	second := <-released
	require.NoError(t, second.err)
	require.False(t, second.probe, "after a good probe, requests go normally")

	g.pause(time.Second)
	g.pause(time.Second)
	require.Len(t, clamps, 1, "a hint within the cap is not clamped")
}

func TestGateProbeAnsweredWithAnotherPause(t *testing.T) {
	clock := &fakeClock{now: testEpoch()}
	g := &rateGate{clock: clock, maxPause: time.Minute}
	g.pause(10 * time.Second)
	probe, err := g.wait(context.Background(), clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, probe)

	g.pause(10 * time.Second) // the probe was told to wait again
	g.probeAnswered()
	probe, err = g.wait(context.Background(), clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, probe, "the next request after the second pause probes again")
	require.Equal(t, []time.Duration{10 * time.Second, 10 * time.Second}, clock.slept)
}

// TestProbeKeepsAPauseOthersAskedFor: while the probe is out, an older
// request's 429 asks for another pause; the probe's good answer must not
// cancel it, so the next request after that pause probes again.
func TestProbeKeepsAPauseOthersAskedFor(t *testing.T) {
	clock := &fakeClock{now: testEpoch()}
	g := &rateGate{clock: clock, maxPause: time.Minute}
	g.pause(10 * time.Second)
	probe, err := g.wait(t.Context(), clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, probe)

	g.pause(10 * time.Second) // another, older request's 429 arrives now
	g.probeAnswered()         // the probe itself was accepted

	probe, err = g.wait(t.Context(), clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, probe, "after the second pause one request probes first")
}

// testEpoch is where the fake clocks start (internal/testclock).
func testEpoch() time.Time { return testclock.Epoch() }
