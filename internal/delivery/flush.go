package delivery

import (
	"context"
	"errors"
	"fmt"
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
	ExtraRequests         = 32
	ExtraRequestsPerBatch = 6

	// minRequestWindow: after retry_budget, a request starts only with at
	// least this much (or half of timeout, if shorter) left before the
	// Write's deadline.
	minRequestWindow = time.Second

	// MaxRounds bounds the rounds of search and judgement in one Write
	// (see flush.rounds), and so its control requests: at most one per
	// round. When every measurement is bad, the first round singles out a
	// few dozen (its budget goes mostly to the first splits of every
	// batch) and each round about four times as many as the last
	// (refundPerDrop): five rounds clear a Write of 3,000, and the first
	// round's budget grows with the Write's batches. The sixth is slack.
	MaxRounds = 6
)

var (
	// ErrDeadline: Deliver's error wraps it when the Write's time ran out
	// before everything was settled.
	ErrDeadline    = errors.New("this flush's time (timeout + retry_budget) is spent")
	errSplitBudget = errors.New("this flush's budget of extra requests for splitting and isolation is spent")
	errRounds      = fmt.Errorf("this flush's %d rounds of isolation and proof are spent", MaxRounds)
)

// flush is the state of one Write's delivery.
type flush struct {
	s    *Sender
	ep   Endpoint
	auth *Credentials // the connection's (credentials.go)
	// stop ends waits and keeps new requests from starting once the flush
	// has failed. Requests already sent are not cancelled: Librato may have
	// stored them, and only their answer tells.
	stop   context.Context
	cancel context.CancelCauseFunc
	// requests carries the Write's deadline to every request and body read;
	// each request adds its timeout (see post).
	requests    context.Context
	endRequests context.CancelFunc
	sendBy      time.Time // retries and pauses end here (start + retry_budget)
	deadline    time.Time // everything ends here (sendBy + timeout)
	startBy     time.Time // no request starts later (see newFlush)
	searchBy    time.Time // no search for rejected measurements starts later (see newFlush)
	settled     []bool    // per point: accepted, or dropped on proof
	budget      splitBudget
	accepted    atomic.Bool // some request of this flush was accepted
	// progress counts the measurements settled so far: a round that
	// settled none ends the rounds (see rounds).
	progress atomic.Int64
	// seq is the flush's logical clock (see evidence.go); evidence is
	// what it recorded of acceptances and single rejections.
	seq           atomic.Uint64
	evidence      evidence
	rejections    rejectionLog
	mu            sync.Mutex
	err           error // the first failure
	otherFailures int
	// deferred: the parts of rejected requests that the split budget could
	// not search yet; the next round goes on with them (guarded by mu).
	deferred []part
}

// part is a rejected request's measurements whose search waits for budget.
type part struct {
	pts     []Measurement
	settled []bool
	o       outcome // the rejection: the search's hint
	t       try
}

// Deliver sends ms to ep and returns, per measurement, whether it is
// settled: accepted by Librato, or dropped on proof that Librato refuses it.
// The error is nil when every measurement is settled. Deliver may reorder ms
// in place; Result.Settled[i] is about ms[i] as Deliver leaves it. start is
// when the caller's Write began: its deadline (start + retry_budget +
// timeout) holds for everything Deliver sends. Deliver is not safe for
// concurrent use: the caller serialises it with Connect and Close.
func (s *Sender) Deliver(ms []Measurement, ep Endpoint, start time.Time) (Result, error) {
	if s.client == nil {
		return Result{}, errors.New("not connected: Connect was not called")
	}
	if len(ms) == 0 {
		return Result{}, nil
	}
	f, err := s.newFlush(len(ms), ep, start)
	if err != nil {
		return Result{Settled: make([]bool, len(ms))}, err
	}
	defer f.end()

	batches := s.batches(ms)
	f.evidence.accepted = make([]span, 0, len(batches)) // one per batch, usually
	f.budget.reset(len(batches))
	f.each(len(batches), func(i int) error {
		lo, hi := batches[i][0], batches[i][1]
		return f.send(ms[lo:hi], f.settled[lo:hi], batchTry)
	})
	f.rounds()
	f.rejections.report(s.log)

	res := Result{Settled: f.settled, Accepted: f.accepted.Load(), Proofs: f.evidence.proofs}
	if f.err == nil {
		return res, nil
	}
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
	return res, fmt.Errorf("%d of %d measurements settled, the rest stay buffered for the next flush: %w",
		done, len(ms), err)
}

func (s *Sender) newFlush(n int, ep Endpoint, start time.Time) (*flush, error) {
	auth, err := s.flushCredentials()
	if err != nil {
		return nil, err
	}
	f := &flush{
		s:        s,
		ep:       ep,
		auth:     auth,
		sendBy:   start.Add(s.cfg.RetryBudget),
		deadline: start.Add(s.cfg.RetryBudget + s.cfg.Timeout),
		settled:  make([]bool, n),
	}
	// Within retry_budget a request always starts (it still ends by the
	// deadline); after it, only with a fair share of timeout left.
	f.startBy = f.deadline.Add(-min(minRequestWindow, s.cfg.Timeout/2))
	if f.startBy.Before(f.sendBy) {
		f.startBy = f.sendBy
	}
	// A search's suspects are dropped only after their judgement (a
	// control and one more request each, about half what finding them
	// cost), which must start by startBy too: what a search finds too late
	// to be judged is lost work, and the next flush searches again.
	f.searchBy = start.Add(f.startBy.Sub(start) * 2 / 3)
	f.stop, f.cancel = context.WithCancelCause(context.Background())
	f.requests, f.endRequests = s.clock.WithDeadline(context.Background(), f.deadline)
	return f, nil
}

func (f *flush) end() {
	f.cancel(nil)
	f.endRequests()
	f.s.rereadCreds = f.err != nil // every request is done: no lock needed
}

// batches cuts pts into ranges of at most measurements_per_request points
// and about the body limit learned so far (bodylimit.go).
func (s *Sender) batches(pts []Measurement) [][2]int {
	var out [][2]int
	start, size, limit := 0, 0, s.limit.size()
	for i := range pts {
		n := encodedSize(&pts[i])
		if i > start && (i-start == s.cfg.MeasurementsPerRequest || size+n > limit) {
			out = append(out, [2]int{start, i})
			start, size = i, 0
		}
		size += n
	}
	return append(out, [2]int{start, len(pts)})
}

// each runs job(0..n-1) with up to concurrent_writes at a time. A job's
// error fails the flush, and no new job starts after that.
func (f *flush) each(n int, job func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(f.s.cfg.Concurrency, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || f.stop.Err() != nil {
					return
				}
				if err := job(i); err != nil {
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
		return ErrDeadline
	}
	return nil
}

// rounds judges the measurements the search singled out (evidence.go) and,
// while a round made progress and the Write's time allows, searches on in
// the same Write with what the split budget had to leave for later.
//
// Proof is gathered at the end of a round, so a Write in which nothing is
// accepted (a backlog entirely too far in the past) only grows its budget
// there, with the drops it proves (refundPerDrop). Without further rounds
// each flush would single out what its starting budget allows, a few dozen
// measurements, and a backlog of thousands would take a hundred flushes.
// A round that settles nothing ends them: an endpoint that refuses
// everything, the control included, costs one round per Write, as before.
// At most MaxRounds rounds, each with at most one control request, and
// none after searchBy.
func (f *flush) rounds() {
	var before int64 // what was settled when the round began
	for round := 1; ; round++ {
		f.judge()
		parts := f.takeDeferred()
		if len(parts) == 0 {
			return
		}
		settled := f.progress.Load()
		if why := f.mayGoOn(round, settled-before); why != nil {
			f.leaveDeferred(parts, why)
			return
		}
		before = settled
		f.each(len(parts), func(i int) error {
			p := &parts[i]
			return f.isolate(p.pts, p.settled, p.o, p.t)
		})
	}
}

// mayGoOn reports why no round may follow round, which settled that many
// measurements, or nil.
func (f *flush) mayGoOn(round int, settled int64) error {
	if err := f.mayStart(); err != nil {
		return err
	}
	switch {
	case f.s.clock.Now().After(f.searchBy):
		return ErrDeadline
	case settled == 0:
		return errSplitBudget // and nothing settled gave any of it back
	case round == MaxRounds:
		return errRounds
	}
	return nil
}

// deferPart keeps a rejected request's measurements for the next round.
func (f *flush) deferPart(pts []Measurement, settled []bool, o outcome, t try) {
	f.mu.Lock()
	f.deferred = append(f.deferred, part{pts, settled, o, t})
	f.mu.Unlock()
}

func (f *flush) takeDeferred() []part {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := f.deferred
	f.deferred = nil
	return parts
}

// leaveDeferred leaves the deferred parts unsettled, for the next flush,
// with one error for all of them.
func (f *flush) leaveDeferred(parts []part, why error) {
	n := 0
	for _, p := range parts {
		n += len(p.pts)
	}
	f.leave(fmt.Errorf("%w: %d measurement(s) of rejected requests not yet singled out: %w",
		why, n, parts[0].o.err))
}

// send delivers pts, retrying transient failures within the retry budget,
// splitting what is too large and isolating what Librato rejects. An error
// means the flush must stop; measurements left unsettled for other reasons
// are recorded with leave. t says whether the split budget paid for it.
func (f *flush) send(pts []Measurement, settled []bool, t try) error {
	if len(pts) > 1 && bodySize(pts) > f.s.limit.size() {
		return f.cut(pts, settled, t) // the limit shrank since the batch was cut
	}
	body, err := f.s.encode(pts, f.ep.Tagged)
	if err != nil {
		return err
	}
	defer body.release()
	o, err := f.exchange(body, len(pts))
	if err != nil {
		return err
	}
	if o.kind == delivered {
		f.delivered(pts, settled, o, t != batchTry)
		return nil
	}
	return f.answered(pts, settled, o, t)
}

// exchange posts body until an answer is not transient, within the retry
// budget, and records an acceptance as evidence. An error means the flush
// must stop.
func (f *flush) exchange(body *payload, n int) (outcome, error) {
	for attempt := 0; ; attempt++ {
		if err := f.mayStart(); err != nil {
			return outcome{}, err
		}
		t, err := f.s.admission.admit(f.stop, f.sendBy, f.startBy)
		if err != nil {
			return outcome{}, err
		}
		o := f.post(body, n)
		f.s.admission.done(t)
		switch o.kind {
		case transient:
			if err := f.backoff(attempt, o); err != nil {
				return outcome{}, err
			}
			continue
		case delivered:
			f.accepted.Store(true)
			f.evidence.accept(o)
		}
		return o, nil
	}
}

// post is one request and the reading of its answer, which together must
// end within timeout (and by the Write's deadline). A context of its own,
// not http.Client.Timeout, which forks the request and starts a goroutine
// and a timer per request: 1.7% of a flush's CPU (docs/performance.md).
func (f *flush) post(body *payload, n int) outcome {
	ctx, cancel := f.s.clock.WithDeadline(f.requests, f.s.clock.Now().Add(f.s.cfg.Timeout))
	defer cancel()
	o := f.s.post(ctx, f.auth, f.ep, body, n, &f.seq)
	// net/http says only "context deadline exceeded": name the setting,
	// as http.Client.Timeout's error did, unless the Write's time ended it.
	if o.err != nil && errors.Is(o.err, context.DeadlineExceeded) && ctx.Err() != nil && f.requests.Err() == nil {
		o.err = fmt.Errorf("%w (no answer within timeout, %s)", o.err, f.s.cfg.Timeout)
	}
	return o
}

// delivered settles pts, which Librato accepted.
func (f *flush) delivered(pts []Measurement, settled []bool, o outcome, extra bool) {
	if extra {
		f.budget.accepted() // progress: it gives back more than it cost
	}
	f.s.limit.accepted(bodySize(pts), f.s.clock.Now())
	f.s.stats.Written.Incr(int64(len(pts)))
	f.s.stats.APIFailed.Incr(int64(o.apiFailed))
	f.rejections.acceptedWithFailures(o)
	for i := range settled {
		settled[i] = true
	}
	f.progress.Add(int64(len(settled)))
}

// answered acts on an answer that did not deliver pts.
func (f *flush) answered(pts []Measurement, settled []bool, o outcome, t try) error {
	switch o.kind {
	case tooLarge:
		if f.s.limit.refused(bodySize(pts), len(pts), f.s.clock.Now()) == notSize {
			// A single measurement, or a body of a size the endpoint
			// took lately: whatever answered 413 is not judging size.
			f.leave(o.err)
			return nil
		}
		return f.split(pts, settled, o)
	case rejected:
		return f.isolate(pts, settled, o, t)
	}
	return o.err
}

// backoff waits before the next attempt, jittered and exponential, and gives
// up when that would end past the retry budget. A pause the API asked for is
// the gate's to enforce.
func (f *flush) backoff(attempt int, o outcome) error {
	var wait time.Duration
	if o.retryAfter <= 0 {
		wait = backoffDelay(attempt, f.s.cfg.Jitter())
	}
	if f.s.clock.Now().Add(wait).After(f.sendBy) {
		return fmt.Errorf("giving up after %d attempt(s) within retry_budget: %w", attempt+1, o.err)
	}
	f.s.stats.Retries.Incr(1)
	return f.s.clock.Sleep(f.stop, wait)
}

// split cuts a request answered 413 at the body limit just learned.
func (f *flush) split(pts []Measurement, settled []bool, o outcome) error {
	if !f.budget.spend(pieces(pts, f.s.limit.size())) {
		f.leave(fmt.Errorf("%w: %d measurements not sent: %w", errSplitBudget, len(pts), o.err))
		return nil
	}
	return f.cut(pts, settled, extraTry)
}

// isolate finds the measurements of a rejected request, in the order the
// rejection suggests (search.go). A measurement Librato rejects alone is a
// suspect, which the end of the round judges by the evidence rule
// (evidence.go); until then it stays unsettled, so the search can tell
// from settled whether its guess was right. Past the split budget, or past
// the flush's time for searching (searchBy), the rest waits for the next
// round (see rounds), or else for the next flush, which goes on from there.
func (f *flush) isolate(pts []Measurement, settled []bool, o outcome, t try) error {
	if len(pts) == 1 {
		f.evidence.suspect(&pts[0], &settled[0], o)
		return nil
	}
	if f.s.clock.Now().After(f.searchBy) {
		f.deferPart(pts, settled, o, t)
		return nil
	}
	step := planSearch(pts, hintOf(o), t != blindTry)
	if !f.budget.spend(step.requests(len(pts))) {
		f.deferPart(pts, settled, o, t)
		return nil
	}
	return f.search(pts, settled, step, t)
}

func (f *flush) drop(p *Measurement, settled *bool, o outcome) {
	*settled = true
	f.progress.Add(1)
	f.budget.dropped()
	f.s.stats.Rejected.Incr(1)
	f.rejections.add(p, o.reason)
}
