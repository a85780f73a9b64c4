package delivery

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A backlog after a long outage can be entirely "too far in the past":
// nothing in the Write is accepted, so every drop rests on control
// requests. It must clear in a few flushes, each measurement still on its
// own proof; and an endpoint that refuses everything, the control included,
// must drop nothing at a bounded cost per flush. Each case logs one row:
//
//	go test -count=1 -run 'Backlog' -v ./internal/delivery | grep '| '

// backlogFlush is what one flush of backlogRun cost and settled.
type backlogFlush struct {
	requests, dropped, controls int64
	err                         error
}

// backlogRun delivers ms as Telegraf would, resending what a flush left
// unsettled, for at most limit flushes. It checks every proof's order and
// returns each flush's row and what is still unsettled.
func backlogRun(t *testing.T, s *Sender, lib *memLibrato, clock *fakeClock, ms []Measurement, limit int) ([]backlogFlush, []Measurement) {
	t.Helper()
	rejected, controls := s.stats.Rejected, s.stats.Controls
	rows := make([]backlogFlush, 0, limit)
	for k := range limit {
		if len(ms) == 0 {
			break
		}
		before := backlogFlush{requests: lib.requests.Load(), dropped: rejected.Get(), controls: controls.Get()}
		res, err := s.Deliver(ms, Endpoint{URL: "https://metrics-api.librato.com/v1/metrics"}, clock.Now())
		row := backlogFlush{requests: lib.requests.Load() - before.requests, dropped: rejected.Get() - before.dropped,
			controls: controls.Get() - before.controls, err: err}
		rows = append(rows, row)
		if err != nil {
			t.Logf("flush %d: %v", k+1, err)
		}
		require.Len(t, res.Settled, len(ms))
		require.Len(t, res.Proofs, int(row.dropped), "flush %d: one proof per drop", k+1)
		for _, p := range res.Proofs {
			require.Less(t, p.R1.Answered, p.A.Sent, "%s: A sent after R1's answer", p.Measurement.Name)
			require.Less(t, p.A.Answered, p.R2.Sent, "%s: R2 sent after A's answer", p.Measurement.Name)
		}
		require.LessOrEqual(t, row.controls, int64(MaxRounds), "flush %d: at most one control per round", k+1)
		left := ms[:0]
		for i := range ms {
			if !res.Settled[i] {
				left = append(left, ms[i])
			}
		}
		ms = left
		clock.advance(10 * time.Second) // flush_interval
	}
	return rows, ms
}

func TestBacklogTooOld(t *testing.T) {
	const n = 3000 // 10 batches
	// perFlush bounds a flush that settles nothing: its batches, the split
	// budget's start and one control.
	const perFlush = n/300 + ExtraRequests + ExtraRequestsPerBatch*n/300 + 1
	cases := []struct {
		name string
		// refuse makes the endpoint's rule for one run: whether it refuses
		// g, given the oldest time it takes.
		refuse  func() func(g memGauge, oldest int64) bool
		flushes int
		// perRequest: how long each request takes on the fake clock, one
		// after another; set, the Write has the plugin's default time
		// (timeout 5 s + retry_budget 5 s), so 10 ms is an endpoint
		// answering in 100 ms, 10 requests at a time.
		perRequest time.Duration
		// cleared: every measurement dropped on proof within maxFlushes.
		// Else nothing is dropped after the first flush, which drops at
		// most maxFirst, and each flush after it costs at most perFlush.
		cleared    bool
		maxFlushes int
		maxFirst   int64
		// firstErr: the first flush's error wraps it (nil: no error).
		firstErr error
	}{
		{name: "all too far in the past, the control accepted", flushes: 10, cleared: true, maxFlushes: 1,
			refuse: func() func(memGauge, int64) bool {
				return func(g memGauge, oldest int64) bool { return g.Time < oldest }
			}},
		{name: "all too far in the past, 100 ms a request: the deadline ends the rounds", flushes: 30, cleared: true, maxFlushes: 18,
			perRequest: 10 * time.Millisecond, firstErr: ErrDeadline,
			refuse: func() func(memGauge, int64) bool {
				return func(g memGauge, oldest int64) bool { return g.Time < oldest }
			}},
		{name: "everything refused, the control too", flushes: 5,
			refuse: func() func(memGauge, int64) bool {
				return func(memGauge, int64) bool { return true }
			}},
		{name: "the first control accepted, then everything refused", flushes: 5, maxFirst: n / 10,
			refuse: func() func(memGauge, int64) bool {
				var controls atomic.Int64
				return func(g memGauge, oldest int64) bool {
					if g.Name == ControlName {
						return controls.Add(1) > 1
					}
					return controls.Load() > 1 || g.Time < oldest
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := testEpoch()
			oldest := start.Add(-time.Hour).Unix()
			ms := costWorkload(n)
			for i := range ms {
				ms[i].Time = start.Add(-2*time.Hour).Unix() - int64(i/60) // 60 per second: distinct keys
			}
			refuse := tc.refuse()
			lib := &memLibrato{
				rule: func(g memGauge) (string, string, bool) {
					return "measure_time", "is too far in the past", refuse(g, oldest)
				},
				phrase: namedPhrase,
			}
			clock := &fakeClock{now: start}
			var transport http.RoundTripper = lib
			if tc.perRequest > 0 {
				transport = &slowTransport{lib, clock, tc.perRequest}
			}
			s, rejected := costSender(t, transport, clock)
			if tc.perRequest > 0 {
				s.cfg.Timeout, s.cfg.RetryBudget = 5*time.Second, 5*time.Second
			}

			rows, left := backlogRun(t, s, lib, clock, ms, tc.flushes)

			var requests, controls int64
			perFlushRequests := make([]int64, len(rows))
			for k, r := range rows {
				requests, controls = requests+r.requests, controls+r.controls
				perFlushRequests[k] = r.requests
			}
			t.Logf("| %s | %d requests (per flush %v) | %d delivered | %d dropped | %d controls | %d flush(es) | %d left |",
				t.Name(), requests, perFlushRequests, storedData(lib), rejected.Get(), controls, len(rows), len(left))
			require.Zero(t, storedData(lib), "only controls are stored")
			if tc.firstErr != nil {
				require.ErrorIs(t, rows[0].err, tc.firstErr)
			}
			if tc.cleared {
				require.Empty(t, left, "the backlog clears")
				require.Equal(t, int64(n), rejected.Get(), "every measurement dropped on its own proof")
				require.LessOrEqual(t, len(rows), tc.maxFlushes, "flushes")
				return
			}
			require.Len(t, rows, tc.flushes)
			require.LessOrEqual(t, rows[0].dropped, tc.maxFirst, "drops while the control was accepted")
			require.Len(t, left, n-int(rows[0].dropped), "nothing else settled")
			for k, r := range rows[1:] {
				require.Zero(t, r.dropped, "flush %d: nothing dropped without an acceptance", k+2)
				require.LessOrEqual(t, r.requests, int64(perFlush), "flush %d's requests", k+2)
				require.Equal(t, int64(1), r.controls, "flush %d: one round, one control", k+2)
			}
		})
	}
}

// TestRoundsEnd: why no further round of search and judgement starts.
func TestRoundsEnd(t *testing.T) {
	start := testEpoch()
	startBy, searchBy := start.Add(time.Minute), start.Add(40*time.Second)
	cases := []struct {
		name    string
		round   int
		settled int64 // in the round
		now     time.Time
		want    error // nil: another round
	}{
		{name: "progress and time left", round: 1, settled: 40, now: start},
		{name: "progress in the round before the last", round: MaxRounds - 1, settled: 1, now: start},
		{name: "nothing settled: nothing refunded the budget", round: 1, now: start, want: errSplitBudget},
		{name: "the last round", round: MaxRounds, settled: 40, now: start, want: errRounds},
		{name: "no time to judge what another search would find", round: 1, settled: 40, now: searchBy.Add(time.Second), want: ErrDeadline},
		{name: "no time for another request", round: 1, settled: 40, now: startBy.Add(time.Second), want: ErrDeadline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &flush{s: &Sender{clock: &fakeClock{now: tc.now}}, startBy: startBy, searchBy: searchBy}
			f.stop, f.cancel = context.WithCancelCause(context.Background())
			defer f.cancel(nil)
			err := f.mayGoOn(tc.round, tc.settled)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

// storedData counts what lib stored, control measurements left out.
func storedData(lib *memLibrato) int {
	n := 0
	for k := range lib.stored {
		if k.Name != ControlName {
			n++
		}
	}
	return n
}

// slowTransport is an endpoint whose every request takes d on the fake clock.
type slowTransport struct {
	rt    http.RoundTripper
	clock *fakeClock
	d     time.Duration
}

func (s *slowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.clock.advance(s.d)
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		return nil, errors.Join(errors.New("slow transport"), err)
	}
	return resp, nil
}
