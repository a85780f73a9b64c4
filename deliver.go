package librato

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxBodyBytes keeps requests under Librato's recommended 1 MB (the
	// hard limit is quoted as 3 MB).
	maxBodyBytes = 1 << 20

	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second

	// isolationRequests bounds the extra requests a flush may spend finding
	// the measurements inside rejected requests: a fixed amount plus some per
	// batch, enough to single out several bad points per batch.
	isolationRequests         = 32
	isolationRequestsPerBatch = 16
)

// flush is the state of one Write's delivery.
type flush struct {
	s    *sender
	auth flushAuth
	// stop ends waits and keeps new requests from starting once the flush
	// has failed. Requests already sent are not cancelled: Librato may have
	// stored them, and only their answer tells.
	stop     context.Context
	cancel   context.CancelCauseFunc
	deadline time.Time
	settled  []bool // per point: accepted, or dropped for good
	budget   atomic.Int64

	errOnce sync.Once
	err     error
}

// deliver sends pts and returns nil when every point is settled. On error,
// the ledger remembers what was settled, so that Telegraf's retry of the same
// metrics does not send those again.
func (s *sender) deliver(pts []point, led *ledger) error {
	if s.client == nil {
		return errors.New("not connected: Connect was not called")
	}
	pts, carried := led.skipSettled(pts, s.stats)
	if len(pts) == 0 {
		led.reset()
		return nil
	}
	f, err := s.newFlush(len(pts))
	if err != nil {
		return err
	}
	defer f.cancel(nil)
	defer f.auth.forget()

	batches := s.batches(pts)
	f.budget.Store(int64(isolationRequests + isolationRequestsPerBatch*len(batches)))
	f.run(pts, batches)

	if f.err == nil {
		led.reset()
		return nil
	}
	led.record(pts, f.settled, carried)
	done := 0
	for _, ok := range f.settled {
		if ok {
			done++
		}
	}
	return fmt.Errorf("%d of %d measurements settled, the rest stay buffered for the next flush: %w",
		done, len(pts), f.err)
}

func (s *sender) newFlush(n int) (*flush, error) {
	auth, err := s.credentials()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	f := &flush{
		s:        s,
		auth:     auth,
		stop:     ctx,
		cancel:   cancel,
		deadline: time.Now().Add(s.cfg.retryBudget),
		settled:  make([]bool, n),
	}
	return f, nil
}

// batches cuts pts into ranges of at most measurements_per_request points
// and about maxBodyBytes.
func (s *sender) batches(pts []point) [][2]int {
	var out [][2]int
	start, size := 0, 0
	for i := range pts {
		n := encodedSize(&pts[i])
		if i > start && (i-start == s.cfg.measurementsPerRequest || size+n > maxBodyBytes) {
			out = append(out, [2]int{start, i})
			start, size = i, 0
		}
		size += n
	}
	return append(out, [2]int{start, len(pts)})
}

// run sends the batches with up to concurrent_writes requests in flight.
func (f *flush) run(pts []point, batches [][2]int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(f.s.cfg.concurrency, len(batches)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(batches) || f.stop.Err() != nil {
					return
				}
				lo, hi := batches[i][0], batches[i][1]
				if err := f.send(pts[lo:hi], f.settled[lo:hi]); err != nil {
					f.fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// fail records the first error and stops the other batches: whatever made
// this one give up would make the others wait for nothing.
func (f *flush) fail(err error) {
	f.errOnce.Do(func() {
		f.err = err
		f.cancel(err)
	})
}

// send delivers pts, retrying transient failures within the retry budget and
// isolating measurements Librato rejects.
func (f *flush) send(pts []point, settled []bool) error {
	body, err := f.s.encode(pts)
	if err != nil {
		return err
	}
	defer body.release()
	for attempt := 0; ; attempt++ {
		if f.stop.Err() != nil {
			return context.Cause(f.stop)
		}
		if err := f.s.gate.wait(f.stop, f.deadline); err != nil {
			return err
		}
		o := f.s.post(&f.auth, body, len(pts))
		switch o.kind {
		case delivered:
			f.s.stats.written.Incr(int64(len(pts)))
			for i := range settled {
				settled[i] = true
			}
			return nil
		case transient:
			if err := f.backoff(attempt, o); err != nil {
				return err
			}
		case tooLarge:
			if len(pts) > 1 {
				return f.split(pts, settled)
			}
			return f.isolate(pts, settled, o)
		case rejected:
			return f.isolate(pts, settled, o)
		default:
			return o.err
		}
	}
}

// backoff waits before the next attempt: exponential with jitter, at least
// what the API asked for, and gives up past the retry budget.
func (f *flush) backoff(attempt int, o outcome) error {
	wait := backoffBase << min(attempt, 10)
	wait = min(wait, backoffMax)
	wait = wait/2 + rand.N(wait/2+1)
	if o.retryAfter > 0 {
		f.s.gate.block(o.retryAfter)
		wait = max(wait, o.retryAfter)
	}
	if time.Now().Add(wait).After(f.deadline) {
		return fmt.Errorf("giving up after %d attempt(s) within retry_budget: %w", attempt+1, o.err)
	}
	f.s.stats.retries.Incr(1)
	return sleep(f.stop, wait)
}

// isolate finds the measurements of a rejected request. It first separates
// the ones the error names, then halves the rest after ordering them by time
// (rejections for age affect a prefix), and drops what a request of one is
// rejected for. Past the flush's request budget it drops the remainder.
func (f *flush) isolate(pts []point, settled []bool, o outcome) error {
	if len(pts) == 1 {
		f.drop(pts, settled, o.reason)
		return nil
	}
	if f.budget.Add(-2) < 0 {
		f.s.log.Warnf("Dropping %d measurements Librato rejected (%s): too many rejections in this flush to single them out",
			len(pts), o.reason)
		f.drop(pts, settled, o.reason)
		return nil
	}
	if k := partitionSuspects(pts, o); k > 0 && k < len(pts) {
		return f.sendParts(pts, settled, k)
	}
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.time, b.time) })
	return f.split(pts, settled)
}

func (f *flush) split(pts []point, settled []bool) error {
	return f.sendParts(pts, settled, len(pts)/2)
}

func (f *flush) sendParts(pts []point, settled []bool, k int) error {
	if err := f.send(pts[:k], settled[:k]); err != nil {
		return err
	}
	return f.send(pts[k:], settled[k:])
}

// partitionSuspects moves the points whose name or source the error blames
// to the front and returns how many there are.
func partitionSuspects(pts []point, o outcome) int {
	if len(o.names) == 0 && len(o.sources) == 0 {
		return 0
	}
	k := 0
	for i := range pts {
		if slices.Contains(o.names, pts[i].name) || slices.Contains(o.sources, pts[i].series.source) {
			pts[k], pts[i] = pts[i], pts[k]
			k++
		}
	}
	return k
}

func (f *flush) drop(pts []point, settled []bool, reason string) {
	for i := range pts {
		p := &pts[i]
		f.s.log.Warnf("Librato rejected %s (%s, time %d): %s; dropped it", p.name, p.series, p.time, reason)
		settled[i] = true
	}
	f.s.stats.dropped[reasonRejected].Incr(int64(len(pts)))
}
