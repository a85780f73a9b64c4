package librato

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rateGate holds every request while Librato has asked us to wait.
type rateGate struct {
	mu    sync.Mutex
	until time.Time
}

var errBlocked = errors.New("librato asked to pause sending")

func (g *rateGate) block(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if until := time.Now().Add(d); until.After(g.until) {
		g.until = until
	}
}

// wait returns when sending is allowed again, or errBlocked at once if that
// is later than deadline.
func (g *rateGate) wait(ctx context.Context, deadline time.Time) error {
	g.mu.Lock()
	until := g.until
	g.mu.Unlock()
	if !time.Now().Before(until) {
		return nil
	}
	if until.After(deadline) {
		return fmt.Errorf("%w until %s, past this flush's retry_budget", errBlocked, until.Format(time.RFC3339))
	}
	return sleep(ctx, time.Until(until))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// retryAfter reads Retry-After (seconds or an HTTP date), then Librato's
// rate-limit headers.
func retryAfter(h http.Header) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(time.Until(t), 0)
		}
	}
	return rateLimitReset(h)
}

// rateLimitReset returns how long to wait when a Librato rate-limit header
// (X-Librato-RateLimit-Std / -Agg: "limit=…,remaining=0,reset=…") says the
// budget is spent, or 0. reset is read as seconds from now, or as a Unix
// time when it is that large.
func rateLimitReset(h http.Header) time.Duration {
	var wait time.Duration
	for _, name := range []string{"X-Librato-Ratelimit-Std", "X-Librato-Ratelimit-Agg"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		kv := parseKeyValues(v)
		if remaining, ok := kv["remaining"]; !ok || remaining != "0" {
			continue
		}
		reset, err := strconv.ParseInt(kv["reset"], 10, 64)
		if err != nil || reset < 0 {
			continue
		}
		d := time.Duration(reset) * time.Second
		if reset > 1_000_000_000 {
			d = time.Until(time.Unix(reset, 0))
		}
		wait = max(wait, d)
	}
	return wait
}

func parseKeyValues(s string) map[string]string {
	kv := make(map[string]string)
	for part := range strings.SplitSeq(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		kv[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return kv
}
