package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The wait policy: how long to back off, how long to honour the API's
// requests to pause, and who may send after a pause. The decisions are pure
// functions of their inputs and of a clock, so they are table-tested without
// sleeping.

const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// Clock is the time seam of the wait policy.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or returns ctx's cause if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
	// WithDeadline is context.WithDeadline on this clock: a fake clock's
	// time must never become a real timer's deadline.
	WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc)
}

// realClock is the wall clock.
type realClock struct{}

// Now is time.Now.
func (realClock) Now() time.Time { return time.Now() }

// WithDeadline is context.WithDeadline.
func (realClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, t)
}

// Sleep waits d on a timer, or until ctx ends.
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// backoffDelay is the wait before retry number attempt+1: exponential from
// backoffBase up to backoffMax, with "equal jitter" (half fixed, half random)
// so concurrent batches do not retry in lockstep. jitter is in [0, 1).
func backoffDelay(attempt int, jitter float64) time.Duration {
	d := min(backoffBase<<min(attempt, 10), backoffMax)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// randomJitter spreads retries; it needs no secrecy, only spread.
func randomJitter() float64 { return rand.Float64() } //nolint:gosec // jitter, not a secret

// clampPause bounds a pause the API asked for. A Retry-After of years (a
// misconfigured proxy, a mistaken header) must not stop the output for good:
// past the cap, one probe request decides whether the pause is real.
func clampPause(hint, limit time.Duration) (pause time.Duration, clamped bool) {
	if hint <= 0 {
		return 0, false
	}
	if hint > limit {
		return limit, true
	}
	return hint, false
}

// retryHint reads how long the API asked us to wait: Retry-After (seconds or
// an HTTP date), else a spent Librato rate-limit budget's reset.
func retryHint(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, ok := parseSeconds(v); ok {
			return secondsToDuration(secs)
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	return spentBudgetReset(h, now)
}

// parseSeconds reads a non-negative decimal number of seconds; one too large
// for int64 is a very long time (capped later), not an unreadable hint.
func parseSeconds(v string) (int64, bool) {
	secs, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil:
		return secs, secs >= 0
	case errors.Is(err, strconv.ErrRange) && secs > 0:
		return secs, true // math.MaxInt64
	}
	return 0, false
}

// secondsToDuration converts without overflowing: 999999999999 seconds is a
// long time, not a negative one.
func secondsToDuration(secs int64) time.Duration {
	const maxSecs = int64(1<<63-1) / int64(time.Second)
	return time.Duration(min(secs, maxSecs)) * time.Second
}

// rateLimit is one X-Librato-RateLimit-* header: "limit=…,remaining=…,reset=…".
type rateLimit struct {
	limit, remaining int64
	reset            time.Duration
	ok               bool
}

var rateLimitHeaders = []string{"X-Librato-Ratelimit-Std", "X-Librato-Ratelimit-Agg"}

// parseRateLimit reads one header value. reset is seconds from now, or a
// Unix time when it is that large.
func parseRateLimit(v string, now time.Time) rateLimit {
	var rl rateLimit
	var haveRemaining bool
	for part := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, ok := parseSeconds(strings.TrimSpace(val))
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "limit":
			rl.limit = n
		case "remaining":
			rl.remaining, haveRemaining = n, true
		case "reset":
			rl.reset = secondsToDuration(n)
			if n > 1_000_000_000 {
				// A Unix time; subtracted in seconds, since time.Unix of
				// an absurd one overflows into the past.
				rl.reset = secondsToDuration(max(n-now.Unix(), 0))
			}
		}
	}
	rl.ok = haveRemaining
	return rl
}

// spentBudgetReset returns how long until the API's spent rate-limit budget
// resets, or 0 when no header says it is spent.
func spentBudgetReset(h http.Header, now time.Time) time.Duration {
	var wait time.Duration
	for _, name := range rateLimitHeaders {
		if v := h.Get(name); v != "" {
			if rl := parseRateLimit(v, now); rl.ok && rl.remaining == 0 {
				wait = max(wait, rl.reset)
			}
		}
	}
	return wait
}

// gateStep is what a request must do before it may be sent.
type gateStep int

const (
	stepSend       gateStep = iota // send now
	stepProbe                      // send now, alone: the first request after a pause
	stepSleep                      // sleep, then ask again
	stepAwaitProbe                 // wait for the probe's answer, then ask again
	stepGiveUp                     // the pause outlasts this flush's retry window
)

// gateState is the shared pause: no request before until; after a pause,
// one probe goes first and the others wait for its answer.
type gateState struct {
	until              time.Time
	probeDue, probeOut bool
	// pauses counts pause calls: a probe's good answer clears probeDue only
	// if no other answer asked for a pause while it was out.
	pauses, probeAt uint64
}

// nextGateStep decides for one request at now; sendBy is the latest time
// this flush may still start a request.
func nextGateStep(st gateState, now, sendBy time.Time) (gateStep, time.Duration) {
	switch {
	case now.Before(st.until) && st.until.After(sendBy):
		return stepGiveUp, st.until.Sub(now)
	case now.Before(st.until):
		return stepSleep, st.until.Sub(now)
	case st.probeDue && st.probeOut:
		return stepAwaitProbe, 0
	case st.probeDue:
		return stepProbe, 0
	}
	return stepSend, 0
}

var errPaused = errors.New("librato asked to pause sending")

// rateGate holds every request of every flush while the API has asked us to
// pause.
type rateGate struct {
	clock    Clock
	maxPause time.Duration
	onClamp  func(hint, pause time.Duration)

	mu       sync.Mutex
	st       gateState
	answered chan struct{} // closed when the outstanding probe is answered
}

// pause holds new requests for the API's hint, at most maxPause, and makes
// the first request after it a probe.
func (g *rateGate) pause(hint time.Duration) {
	d, clamped := clampPause(hint, g.maxPause)
	if d <= 0 {
		return
	}
	if clamped && g.onClamp != nil {
		g.onClamp(hint, d)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if until := g.clock.Now().Add(d); until.After(g.st.until) {
		g.st.until = until
	}
	g.st.probeDue = true
	g.st.pauses++
}

// wait returns when the request may be sent, and whether it is the probe
// (then the caller must report its answer with probeAnswered).
func (g *rateGate) wait(ctx context.Context, sendBy time.Time) (probe bool, err error) {
	for {
		g.mu.Lock()
		step, d := nextGateStep(g.st, g.clock.Now(), sendBy)
		switch step {
		case stepSend:
			g.mu.Unlock()
			return false, nil
		case stepProbe:
			g.st.probeOut = true
			g.st.probeAt = g.st.pauses
			g.answered = make(chan struct{})
			g.mu.Unlock()
			return true, nil
		case stepGiveUp:
			until := g.st.until
			g.mu.Unlock()
			return false, fmt.Errorf("%w until %s (%s from now), past this flush's retry_budget",
				errPaused, until.UTC().Format(time.RFC3339), d.Round(time.Second))
		case stepSleep:
			g.mu.Unlock()
			if err := g.clock.Sleep(ctx, d); err != nil {
				return false, err
			}
		case stepAwaitProbe:
			answered := g.answered
			g.mu.Unlock()
			if err := awaitProbe(ctx, g.clock, answered, sendBy); err != nil {
				return false, err
			}
		}
	}
}

// open reports whether a request could go now without waiting.
func (g *rateGate) open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	step, _ := nextGateStep(g.st, g.clock.Now(), g.clock.Now())
	return step == stepSend
}

func awaitProbe(ctx context.Context, c Clock, answered <-chan struct{}, sendBy time.Time) error {
	ctx, cancel := c.WithDeadline(ctx, sendBy)
	defer cancel()
	select {
	case <-answered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the first request after a pause to be answered: %w", errPaused, context.Cause(ctx))
	}
}

// probeAnswered ends the probe. If its answer, or any other since it went
// out, asked for another pause, the next request probes again.
func (g *rateGate) probeAnswered() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.probeOut = false
	if g.st.pauses == g.st.probeAt {
		g.st.probeDue = false
	}
	close(g.answered)
}

// Pacing: Librato's X-Librato-RateLimit-* headers on every answer say how
// much of the budget is left. Past half of it, request starts are spaced so
// the rest lasts until the reset, more evenly the less is left; with no more
// left than the requests that may be in flight, every request waits for the
// reset. The budget's unit (requests or measurements) is not documented, so
// the cost of one request is learned from how far remaining falls.

// paceInterval is the spacing of request starts for the tightest budget;
// pause > 0 means wait that long (until the reset) before any request. The
// reset is taken at most as maxReset (max_retry_after): an absurd one must
// not space requests for months.
func paceInterval(rl rateLimit, costPerRequest float64, inFlight int, maxReset time.Duration) (interval, pause time.Duration) {
	rl.reset = min(rl.reset, maxReset)
	if !rl.ok || rl.limit <= 0 || rl.reset <= 0 {
		return 0, 0
	}
	frac := float64(rl.remaining) / float64(rl.limit)
	if frac >= 0.5 {
		return 0, 0
	}
	left := float64(rl.remaining)/max(costPerRequest, 1) - float64(inFlight)
	if left < 1 {
		return 0, rl.reset
	}
	even := float64(rl.reset) / left
	return time.Duration(even * (1 - frac/0.5)), 0
}

// learnCost updates the estimate of how much one request takes from the
// budget, from two answers of the same window (remaining fell).
func learnCost(cost float64, prev, cur rateLimit) float64 {
	if !prev.ok || !cur.ok || cur.remaining >= prev.remaining || cur.reset > prev.reset {
		return cost // a new window, or answers out of order
	}
	d := float64(prev.remaining - cur.remaining)
	return 0.8*cost + 0.2*d
}

// tightest returns the header whose budget has the smallest share left.
func tightest(h http.Header, now time.Time) rateLimit {
	var best rateLimit
	for _, name := range rateLimitHeaders {
		v := h.Get(name)
		if v == "" {
			continue
		}
		rl := parseRateLimit(v, now)
		if rl.ok && rl.limit > 0 && (!best.ok || rl.remaining*best.limit < best.remaining*rl.limit) {
			best = rl
		}
	}
	return best
}

// reserveSlot gives a request the first start time at least interval after
// the previous one.
func reserveSlot(now, next time.Time, interval time.Duration) (slot, newNext time.Time) {
	slot = now
	if next.After(now) {
		slot = next
	}
	return slot, slot.Add(interval)
}

// staleBudget: answers arrive out of order, so one that reports more left
// than an earlier one, before that one's window could have reset, says
// nothing new; letting it relax the pacing would overrun the budget. The
// window is taken at most as maxReset (max_retry_after), as everywhere in
// the pacing: with the raw reset, one absurd header ("resets in 31 years")
// would make every later answer stale, and pacing would be off for good.
func staleBudget(last rateLimit, lastAt time.Time, cur rateLimit, now time.Time, maxReset time.Duration) bool {
	return last.ok && cur.remaining > last.remaining && now.Before(lastAt.Add(min(last.reset, maxReset)))
}

// pacer is the sender's view of the rate-limit budget.
type pacer struct {
	maxReset time.Duration

	mu       sync.Mutex
	last     rateLimit
	lastAt   time.Time
	cost     float64
	interval time.Duration
	next     time.Time
	until    time.Time // the pacing ends with the budget's window
}

// observe reads an answer's rate-limit headers; it returns the pause to
// apply (0 for none) and the budget seen, for the self-metrics.
func (p *pacer) observe(h http.Header, now time.Time, inFlight int) (time.Duration, rateLimit) {
	rl := tightest(h, now)
	if !rl.ok {
		return 0, rl
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if staleBudget(p.last, p.lastAt, rl, now, p.maxReset) {
		return 0, p.last
	}
	if p.cost == 0 {
		p.cost = 1
	}
	p.cost = learnCost(p.cost, p.last, rl)
	p.last, p.lastAt = rl, now
	var pause time.Duration
	p.interval, pause = paceInterval(rl, p.cost, inFlight, p.maxReset)
	p.until = now.Add(min(rl.reset, p.maxReset))
	return pause, rl
}

// wait spaces request starts; it fails when the start would be past sendBy.
func (p *pacer) wait(ctx context.Context, c Clock, sendBy time.Time) error {
	p.mu.Lock()
	now := c.Now()
	if !now.Before(p.until) {
		p.interval = 0 // the window reset: the budget is whole again
	}
	if p.interval <= 0 {
		p.mu.Unlock()
		return nil
	}
	slot, next := reserveSlot(now, p.next, p.interval)
	if slot.After(p.until) {
		slot, next = p.until, p.until
	}
	if slot.After(sendBy) {
		p.mu.Unlock()
		return fmt.Errorf("%w: librato's rate-limit budget is low and the next request slot is past this flush's retry_budget", errPaused)
	}
	p.next = next
	p.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		return c.Sleep(ctx, d)
	}
	return nil
}
