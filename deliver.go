package librato

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxBodyBytes keeps requests well under Librato's recommended 1 MB
	// (the hard limit is quoted as 3 MB) and under the 1 MiB body limit that
	// proxies such as nginx apply by default.
	maxBodyBytes = 512 << 10

	// The extra requests one flush may spend splitting requests answered
	// 413 and singling out the measurements of requests Librato rejected:
	// a few per batch, shared by all batches. An extra request that is
	// accepted gives its share back, so the budget bounds the requests
	// that make no progress (an endpoint refusing everything) while poison
	// points among good ones are still singled out. What a spent budget
	// leaves unsettled stays buffered, and the next flush goes on from there.
	splitRequests         = 32
	splitRequestsPerBatch = 6

	// minRequestWindow: after retry_budget, a request starts only with at
	// least this much (or half of timeout, if shorter) left before the
	// Write's deadline.
	minRequestWindow = time.Second
)

var (
	errDeadline    = errors.New("this flush's time (timeout + retry_budget) is spent")
	errSplitBudget = errors.New("this flush's budget of extra requests for splitting and isolation is spent")
)

// flush is the state of one Write's delivery.
type flush struct {
	s    *sender
	ep   endpoint
	auth flushAuth
	// stop ends waits and keeps new requests from starting once the flush
	// has failed. Requests already sent are not cancelled: Librato may have
	// stored them, and only their answer tells.
	stop   context.Context
	cancel context.CancelCauseFunc
	// requests carries the Write's deadline to every request and body read.
	requests    context.Context
	endRequests context.CancelFunc
	sendBy      time.Time // retries and pauses end here (start + retry_budget)
	deadline    time.Time // everything ends here (sendBy + timeout)
	startBy     time.Time // no request starts later (see newFlush)
	settled     []bool    // per point: accepted, or dropped on proof
	budget      atomic.Int64
	// accepted: a request of this flush was accepted (see lastAccepted).
	accepted atomic.Bool
	// awaitingEvidence are single measurements Librato rejected before
	// the endpoint had accepted anything; the end of the flush decides.
	awaitingEvidence []rejectedPoint
	rejections       rejectionLog
	mu               sync.Mutex
	err              error // the first failure
	otherFailures    int
}

// lastAccepted reports whether the last deliver had a request accepted at
// its endpoint (a flush that sent nothing, or was refused, had none).
func (s *sender) lastAccepted() bool { return s.flushAccepted }

// deliver sends pts and returns nil when every point is settled. On error,
// the ledger remembers what was settled, so that Telegraf's retry of the same
// metrics does not send those again. start is when the Write began: its
// deadline holds for everything the Write sends.
func (s *sender) deliver(pts []point, led *ledger, ep endpoint, start time.Time) error {
	s.flushAccepted = false
	if s.client == nil {
		return errors.New("not connected: Connect was not called")
	}
	pts, carried := led.skipSettled(pts, s.stats)
	if len(pts) == 0 {
		led.reset()
		return nil
	}
	f, err := s.newFlush(len(pts), ep, start)
	if err != nil {
		return err
	}
	defer f.end()

	batches := s.batches(pts)
	f.budget.Store(int64(splitRequests + splitRequestsPerBatch*len(batches)))
	f.run(pts, batches)
	s.flushAccepted = f.accepted.Load()
	f.judgeAwaitingEvidence()
	f.rejections.report(s.log)

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
	err = f.err
	if f.otherFailures > 0 {
		err = fmt.Errorf("%w (and %d other failed request(s))", err, f.otherFailures)
	}
	return fmt.Errorf("%d of %d measurements settled, the rest stay buffered for the next flush: %w",
		done, len(pts), err)
}

func (s *sender) newFlush(n int, ep endpoint, start time.Time) (*flush, error) {
	auth, err := s.credentials()
	if err != nil {
		return nil, err
	}
	f := &flush{
		s:        s,
		ep:       ep,
		auth:     auth,
		sendBy:   start.Add(s.cfg.retryBudget),
		deadline: start.Add(s.cfg.retryBudget + s.cfg.timeout),
		settled:  make([]bool, n),
	}
	// Within retry_budget a request always starts (it still ends by the
	// deadline); after it, only with a fair share of timeout left.
	f.startBy = f.deadline.Add(-min(minRequestWindow, s.cfg.timeout/2))
	if f.startBy.Before(f.sendBy) {
		f.startBy = f.sendBy
	}
	f.stop, f.cancel = context.WithCancelCause(context.Background())
	f.requests, f.endRequests = context.WithDeadline(context.Background(), f.deadline)
	return f, nil
}

func (f *flush) end() {
	f.cancel(nil)
	f.endRequests()
	f.auth.forget()
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
				if err := f.send(pts[lo:hi], f.settled[lo:hi], false); err != nil {
					f.fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// fail records err and stops the flush: whatever made this request give up
// (a wrong setting, a proxy, an outage past the retry budget) would make the
// others fail the same way.
func (f *flush) fail(err error) {
	f.note(err)
	f.cancel(err)
}

// leave records err for measurements that stay unsettled while the rest of
// the flush goes on.
func (f *flush) leave(err error) {
	f.note(err)
}

func (f *flush) note(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	} else if !errors.Is(err, context.Cause(f.stop)) {
		f.otherFailures++
	}
}

// mayStart reports why no new request may start, or nil.
func (f *flush) mayStart() error {
	if f.stop.Err() != nil {
		return context.Cause(f.stop)
	}
	if f.s.clock.Now().After(f.startBy) {
		return errDeadline
	}
	return nil
}

// send delivers pts, retrying transient failures within the retry budget,
// splitting what is too large and isolating what Librato rejects. An error
// means the flush must stop; measurements left unsettled for other reasons
// are recorded with leave. extra marks a request paid from the split budget.
func (f *flush) send(pts []point, settled []bool, extra bool) error {
	body, err := f.s.encode(pts, f.ep.tagged)
	if err != nil {
		return err
	}
	defer body.release()
	for attempt := 0; ; attempt++ {
		if err := f.mayStart(); err != nil {
			return err
		}
		probe, err := f.admit()
		if err != nil {
			return err
		}
		o := f.s.post(f.requests, &f.auth, f.ep, body, len(pts))
		f.s.committed.Add(-1)
		if probe {
			f.s.gate.probeAnswered()
		}
		switch o.kind {
		case delivered:
			f.accepted.Store(true)
			if extra {
				f.budget.Add(1) // progress: give the request back
			}
			f.s.stats.written.Incr(int64(len(pts)))
			f.s.stats.apiFailed.Incr(int64(o.apiFailed))
			f.rejections.acceptedWithFailures(o)
			for i := range settled {
				settled[i] = true
			}
			return nil
		case transient:
			if err := f.backoff(attempt, o); err != nil {
				return err
			}
		case tooLarge:
			if len(pts) == 1 {
				// Far below any body limit of Librato's: whatever answered
				// 413 is not judging this measurement.
				f.leave(o.err)
				return nil
			}
			return f.split(pts, settled, o)
		case rejected:
			return f.isolate(pts, settled, o)
		default:
			return o.err
		}
	}
}

// admit waits until a request may start: no pause in force, and its slot
// in the pacing. The request counts as committed from its slot on, so the
// pacing reserves budget for it. A pause that began while it waited for its
// slot sends it back to the gate.
func (f *flush) admit() (probe bool, err error) {
	for {
		probe, err := f.s.gate.wait(f.stop, f.sendBy)
		if err != nil || probe {
			if probe {
				f.s.committed.Add(1)
			}
			return probe, err
		}
		f.s.committed.Add(1)
		if err := f.s.pace.wait(f.stop, f.s.clock, f.startBy); err != nil {
			f.s.committed.Add(-1)
			return false, err
		}
		if f.s.gate.open() {
			return false, nil
		}
		f.s.committed.Add(-1)
	}
}

// backoff waits before the next attempt, jittered and exponential, and gives
// up when that would end past the retry budget. A pause the API asked for is
// the gate's to enforce.
func (f *flush) backoff(attempt int, o outcome) error {
	var wait time.Duration
	if o.retryAfter <= 0 {
		wait = backoffDelay(attempt, randomJitter())
	}
	if f.s.clock.Now().Add(wait).After(f.sendBy) {
		return fmt.Errorf("giving up after %d attempt(s) within retry_budget: %w", attempt+1, o.err)
	}
	f.s.stats.retries.Incr(1)
	return f.s.clock.Sleep(f.stop, wait)
}

// spend takes n requests from the flush's split budget.
func (f *flush) spend(n int64) bool {
	if f.budget.Add(-n) >= 0 {
		return true
	}
	f.budget.Add(n)
	return false
}

// split halves a request answered 413.
func (f *flush) split(pts []point, settled []bool, o outcome) error {
	if !f.spend(2) {
		f.leave(fmt.Errorf("%w: %d measurements not sent: %w", errSplitBudget, len(pts), o.err))
		return nil
	}
	k := len(pts) / 2
	return f.sendParts(pts[:k], settled[:k], pts[k:], settled[k:])
}

// isolate finds the measurements of a rejected request: the ones the error
// names go alone, the rest are halved after ordering by time (rejections
// for age affect a prefix), and a request of one measurement that Librato
// rejects is proof (see proven). Past the split budget the rest stays
// unsettled for the next flush, which goes on from there.
func (f *flush) isolate(pts []point, settled []bool, o outcome) error {
	if len(pts) == 1 {
		if proven(o, 1, f.s.accepted.Load()) {
			f.drop(&pts[0], &settled[0], o)
			return nil
		}
		f.mu.Lock()
		f.awaitingEvidence = append(f.awaitingEvidence, rejectedPoint{&pts[0], &settled[0], o})
		f.mu.Unlock()
		return nil
	}
	if !f.spend(2) {
		f.leave(fmt.Errorf("%w: %d measurements of a rejected request not yet singled out: %w", errSplitBudget, len(pts), o.err))
		return nil
	}
	if k := partitionSuspects(pts, o); k > 0 && k < len(pts) {
		// The others first: their acceptance is also the evidence that the
		// endpoint takes requests, which proof needs.
		return f.sendParts(pts[k:], settled[k:], pts[:k], settled[:k])
	}
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.Time, b.Time) })
	k := len(pts) / 2
	return f.sendParts(pts[:k], settled[:k], pts[k:], settled[k:])
}

func (f *flush) sendParts(a []point, aSettled []bool, b []point, bSettled []bool) error {
	if err := f.send(a, aSettled, true); err != nil {
		return err
	}
	return f.send(b, bSettled, true)
}

type rejectedPoint struct {
	p       *point
	settled *bool
	o       outcome
}

// judgeAwaitingEvidence: an acceptance anywhere in this flush, even after
// the rejection, shows the endpoint takes requests, which completes the
// proof. Without one, the measurements stay buffered.
func (f *flush) judgeAwaitingEvidence() {
	for _, r := range f.awaitingEvidence {
		if proven(r.o, 1, f.s.accepted.Load()) {
			f.drop(r.p, r.settled, r.o)
			continue
		}
		f.leave(fmt.Errorf("librato rejected %s (%s) but has accepted no request yet, which a rejection needs to count as proof; kept: %w",
			r.p.Name, r.p.Series, r.o.err))
	}
}

// partitionSuspects moves the points whose name or source the error blames
// to the front and returns how many there are.
func partitionSuspects(pts []point, o outcome) int {
	if len(o.names) == 0 && len(o.sources) == 0 {
		return 0
	}
	k := 0
	for i := range pts {
		if slices.Contains(o.names, pts[i].Name) || slices.Contains(o.sources, pts[i].Series.Source) {
			pts[k], pts[i] = pts[i], pts[k]
			k++
		}
	}
	return k
}

func (f *flush) drop(p *point, settled *bool, o outcome) {
	*settled = true
	f.s.stats.dropped[reasonRejected].Incr(1)
	f.rejections.add(p, o.reason)
}

// rejectionLog condenses a flush's proven rejections into one warning per
// reason, with a count and a few examples, so a thousand bad points give a
// handful of lines.
type rejectionLog struct {
	mu      sync.Mutex
	reasons []rejectionReason
	other   int
	// apiFailed and apiErrors: what tagged 2xx answers reported failed.
	apiFailed, apiErrorAnswers int
	apiErrors                  string
}

type rejectionReason struct {
	reason   string
	count    int
	examples []string
}

const (
	maxRejectionReasons  = 5
	maxRejectionExamples = 3
)

func (r *rejectionLog) add(p *point, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.reasons, func(rr rejectionReason) bool { return rr.reason == reason })
	if i < 0 {
		if len(r.reasons) == maxRejectionReasons {
			r.other++
			return
		}
		r.reasons = append(r.reasons, rejectionReason{reason: reason})
		i = len(r.reasons) - 1
	}
	rr := &r.reasons[i]
	rr.count++
	if len(rr.examples) < maxRejectionExamples {
		rr.examples = append(rr.examples, fmt.Sprintf("%s (%s, time %d)", p.Name, p.Series, p.Time))
	}
}

func (r *rejectionLog) acceptedWithFailures(o outcome) {
	if o.apiFailed == 0 && o.apiErrors == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apiFailed += o.apiFailed
	if o.apiErrors != "" {
		r.apiErrorAnswers++
		r.apiErrors = o.apiErrors
	}
}

func (r *rejectionLog) report(log interface{ Warnf(string, ...any) }) {
	if r.apiFailed > 0 || r.apiErrorAnswers > 0 {
		log.Warnf("Librato accepted requests but reported %d failed measurement(s) and %d answer(s) with errors (last: %s); "+
			"they cannot be told apart, so none is resent", r.apiFailed, r.apiErrorAnswers, cmp.Or(r.apiErrors, "none"))
	}
	for _, rr := range r.reasons {
		log.Warnf("Dropped %d measurement(s) Librato rejected: %s; e.g. %s", rr.count, rr.reason, strings.Join(rr.examples, ", "))
	}
	if r.other > 0 {
		log.Warnf("Dropped %d more measurement(s) Librato rejected for other reasons", r.other)
	}
}
