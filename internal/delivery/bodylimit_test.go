package delivery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBodyLimitPolicy walks the policy through sequences of answers; each
// step gives an answer at a time (seconds after t0) and what is expected.
func TestBodyLimitPolicy(t *testing.T) {
	const maxSize = 512 << 10
	type step struct {
		at       int  // seconds after t0
		accept   bool // else a 413
		size, n  int
		verdict  limitVerdict // for a 413
		wantSize int          // the limit after the step
	}
	const kb = 1 << 10
	cases := []struct {
		name  string
		steps []step
	}{
		{"a 413 halves; the halves are accepted and confirm it", []step{
			{at: 0, size: 30 * kb, n: 300, verdict: shrunk, wantSize: 15 * kb},
			{at: 0, accept: true, size: 15 * kb, n: 150, wantSize: 15 * kb},
			{at: 0, size: 15 * kb, n: 150, verdict: notSize, wantSize: 15 * kb}, // took that lately
		}},
		{"concurrent 413s of one size shrink once", []step{
			{at: 0, size: 30 * kb, n: 300, verdict: shrunk, wantSize: 15 * kb},
			{at: 0, size: 30 * kb, n: 300, verdict: shrunk, wantSize: 15 * kb},
		}},
		{"the largest accepted body bounds the shrink", []step{
			{at: 0, size: 30 * kb, n: 300, verdict: shrunk, wantSize: 15 * kb},
			{at: 0, accept: true, size: 15 * kb, n: 150, wantSize: 15 * kb},
			{at: 100, accept: true, size: 15 * kb, n: 150, wantSize: 15 * kb},
			{at: 100, size: 20 * kb, n: 200, verdict: shrunk, wantSize: 15 * kb}, // not 10
		}},
		{"an outage after acceptances: nothing learned", []step{
			{at: 0, accept: true, size: 30 * kb, n: 300, wantSize: maxSize},
			{at: 1, size: 30 * kb, n: 300, verdict: notSize, wantSize: maxSize},
			{at: 2, size: 28 * kb, n: 290, verdict: notSize, wantSize: maxSize},
		}},
		{"accepted sizes are forgotten after limitMemory", []step{
			{at: 0, accept: true, size: 30 * kb, n: 300, wantSize: maxSize},
			{at: 61, size: 30 * kb, n: 300, verdict: shrunk, wantSize: 15 * kb},
		}},
		{"one measurement or a tiny body is never about size", []step{
			{at: 0, size: 900 * kb, n: 1, verdict: notSize, wantSize: maxSize},
			{at: 0, size: kb, n: 10, verdict: notSize, wantSize: maxSize},
		}},
		{"halving down to a tiny body undoes the shrink, then an outage for a while", []step{
			{at: 0, size: 8 * kb, n: 80, verdict: shrunk, wantSize: 4 * kb},
			{at: 0, size: 4 * kb, n: 40, verdict: shrunk, wantSize: 2 * kb},
			{at: 0, size: 2 * kb, n: 20, verdict: shrunk, wantSize: kb},
			{at: 0, size: kb, n: 10, verdict: notSize, wantSize: maxSize},
			{at: 30, size: 8 * kb, n: 80, verdict: notSize, wantSize: maxSize},
			{at: 91, size: 8 * kb, n: 80, verdict: shrunk, wantSize: 4 * kb}, // a limit may be real again
		}},
	}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBodyLimit(maxSize)
			for i, s := range tc.steps {
				now := t0.Add(time.Duration(s.at) * time.Second)
				if s.accept {
					b.accepted(s.size, now)
				} else {
					require.Equal(t, s.verdict, b.refused(s.size, s.n, now), "step %d", i)
				}
				require.Equal(t, s.wantSize, b.size(), "step %d", i)
			}
		})
	}
}

// TestBodyLimitGrowsBackCarefully: after a 413 the limit grows by a quarter
// per 16 bodies near it accepted, not before a minute has passed, never
// above the configured size; a 413 to a grown body returns to the largest
// accepted one and doubles the wait.
func TestBodyLimitGrowsBackCarefully(t *testing.T) {
	const kb = 1 << 10
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	b := newBodyLimit(32 * kb)
	require.Equal(t, shrunk, b.refused(32*kb, 300, t0))
	require.Equal(t, 16*kb, b.size())

	acceptN := func(n int, at time.Time) {
		for range n {
			b.accepted(b.size(), at)
		}
	}
	acceptN(40, t0.Add(30*time.Second))
	require.Equal(t, 16*kb, b.size(), "not within a minute of the 413")
	acceptN(1, t0.Add(61*time.Second))
	require.Equal(t, 20*kb, b.size(), "+25% once the minute is over (what was accepted before counts)")
	acceptN(15, t0.Add(62*time.Second))
	require.Equal(t, 20*kb, b.size(), "15 are not enough")
	acceptN(1, t0.Add(62*time.Second))
	require.Equal(t, 25*kb, b.size())
	b.accepted(10*kb, t0.Add(62*time.Second))
	require.Equal(t, 25*kb, b.size(), "small bodies say nothing about the limit")
	acceptN(16, t0.Add(62*time.Second))
	require.Equal(t, 31*kb+256, b.size())
	acceptN(16, t0.Add(64*time.Second))
	require.Equal(t, 32*kb, b.size(), "never above the configured size")
}

// TestBodyLimitAgainstARealLimit: an endpoint that takes bodies up to 26 KiB,
// one body at the limit a second for two hours. The limit settles below
// 26 KiB, and the growth probes that 413 come less and less often.
func TestBodyLimitAgainstARealLimit(t *testing.T) {
	const kb = 1 << 10
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	b := newBodyLimit(32 * kb)
	const seconds = 2 * 3600
	refusals := make([]time.Duration, 0, seconds)
	for sec := range seconds {
		now := t0.Add(time.Duration(sec) * time.Second)
		size := b.size()
		require.LessOrEqual(t, size, 32*kb)
		if size <= 26*kb {
			b.accepted(size, now)
			continue
		}
		refusals = append(refusals, now.Sub(t0))
		require.Equal(t, shrunk, b.refused(size, 300, now))
	}
	t.Logf("413s at %v; limit %d", refusals, b.size())
	require.LessOrEqual(t, len(refusals), 9, "a 413 per growth probe, the waits doubling up to an hour")
	require.GreaterOrEqual(t, b.size(), 20*kb)
	for i := 2; i < len(refusals); i++ {
		require.GreaterOrEqual(t, refusals[i]-refusals[i-1], refusals[i-1]-refusals[i-2], "the waits never shrink")
	}
}
