package librato

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

	defaultMaxRetryAfter = time.Minute
)

// clock is the time seam of the wait policy.
type clock interface {
	Now() time.Time
	// Sleep waits d, or returns ctx's cause if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

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

func randomJitter() float64 { return rand.Float64() }

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
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return secondsToDuration(secs)
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	return spentBudgetReset(h, now)
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
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil || n < 0 {
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
				rl.reset = max(time.Unix(n, 0).Sub(now), 0)
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
	clock    clock
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
			if err := g.awaitProbe(ctx, answered, sendBy); err != nil {
				return false, err
			}
		}
	}
}

func (g *rateGate) awaitProbe(ctx context.Context, answered <-chan struct{}, sendBy time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, sendBy)
	defer cancel()
	select {
	case <-answered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the first request after a pause to be answered: %w", errPaused, context.Cause(ctx))
	}
}

// probeAnswered ends the probe. If its answer asked for another pause,
// pause has already been called and the next request probes again.
func (g *rateGate) probeAnswered(pausedAgain bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.probeOut = false
	if !pausedAgain {
		g.st.probeDue = false
	}
	close(g.answered)
}
