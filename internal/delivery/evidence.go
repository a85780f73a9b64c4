package delivery

import (
	"errors"
	"fmt"
	"sync"
)

// THE EVIDENCE RULE (README, "Delivery"). A measurement m is dropped as
// rejected_by_api only with this proof, all within one Deliver (one Write)
// and at one request URL:
//
//  1. R1: a request carrying only m, answered 400/422 with a complete body
//     that is Librato's error JSON naming a field (classify's rejected);
//  2. A: an acceptance at the URL (2xx; for tagged, a summary without
//     failures) of a request sent after R1's answer was received;
//  3. R2: another request carrying only m, sent after A's answer was
//     received, answered like R1.
//
// An endpoint that rejects everything for a while (a server-side change, a
// broken compatible server, another account) cannot produce this proof: R1
// falls in that episode, A after it, so R2, later still, is accepted. Nor can
// an acceptance on the other API's URL, or one from before this Write.
//
// "Sent after" and "received" are read on the flush's logical clock: one
// counter that every request reads just before it is handed to the
// transport and again once its answer has been read. A stamp taken before
// sending and one taken after receiving order the real events the same way
// however the goroutines interleave, with no dependence on wall time.

// ControlName is the metric of the control request: when Librato rejected
// single measurements of a Write and no request sent after those rejections
// was accepted, the plugin sends one gauge valid by construction
// (value 1, the current second, source ControlSource or "telegraf-librato",
// tagged with source=<that> on the tagged API) to learn whether the endpoint
// takes data at all. Its acceptance is the evidence (A) the rule needs.
//
// What users see in Librato: a metric "telegraf.librato.control" with value
// 1, at most once per round of search and judgement (see flush.rounds) in
// which measurements were singled out and nothing else was accepted after
// them, so at most MaxRounds times per Write, at one API's URL. In
// practice: a flush of only bad measurements, such as a backlog too far in
// the past, where each round proves about four times as many drops as the
// last. Each one sent is counted in the control_requests self-metric.
const ControlName = "telegraf.librato.control"

// defaultControlSource is the control's source when default_source is not set.
const defaultControlSource = "telegraf-librato"

// errNoEvidence: single measurements were rejected, and nothing the
// endpoint accepted afterwards shows it takes data.
var errNoEvidence = errors.New("librato accepted no request sent after these rejections, not even a control measurement, " +
	"so they may be about the endpoint rather than the measurements; kept")

// span is one accepted request's place on the flush's logical clock.
type span struct {
	url            string
	sent, answered uint64
}

// Proof is the record behind one measurement dropped as rejected_by_api:
// the three exchanges of the rule, all at URL, read on the flush's logical
// clock (Sent just before the request went out, Answered once its answer
// was read), so a checker can verify the order.
type Proof struct {
	Measurement Measurement
	URL         string
	R1, A, R2   Exchange
	Reason      string // Librato's explanation in R2
}

// Exchange is one request's place on the flush's logical clock.
type Exchange struct {
	Sent, Answered uint64
}

// proven is the rule, over recorded answers: r1 and r2 are the answers to
// two requests carrying only the measurement, accepted holds the flush's
// acceptances that may serve as A. It returns the A it found.
func proven(r1 outcome, accepted []span, r2 outcome) (span, bool) {
	if !singleRejection(r1) || !singleRejection(r2) || r1.url != r2.url {
		return span{}, false
	}
	if r2.sent <= r1.answered {
		return span{}, false
	}
	for _, a := range accepted {
		if a.url == r1.url && a.sent > r1.answered && a.answered < r2.sent {
			return a, true
		}
	}
	return span{}, false
}

// singleRejection: o is Librato's complete field error for a request of one
// measurement (classify and unfinished make anything else another kind).
func singleRejection(o outcome) bool {
	return o.kind == rejected && o.measurements == 1 && o.answered > o.sent
}

// acceptedAfter reports whether some acceptance at url was sent after t.
func acceptedAfter(accepted []span, url string, t uint64) bool {
	for _, a := range accepted {
		if a.url == url && a.sent > t {
			return true
		}
	}
	return false
}

// evidence is a flush's record: its acceptances, and the measurements
// whose single request was rejected once (R1) and await a second (R2).
type evidence struct {
	mu       sync.Mutex
	accepted []span
	pending  []suspect
	proofs   []Proof
}

// suspect is a measurement Librato rejected alone once.
type suspect struct {
	m       *Measurement
	settled *bool
	r1      outcome
}

func (e *evidence) accept(o outcome) {
	if o.apiFailed > 0 || o.apiErrors != "" || o.summaryUnread {
		return // a tagged summary with failures, or unread, is no proof of health
	}
	e.mu.Lock()
	e.accepted = append(e.accepted, span{url: o.url, sent: o.sent, answered: o.answered})
	e.mu.Unlock()
}

func (e *evidence) suspect(m *Measurement, settled *bool, r1 outcome) {
	e.mu.Lock()
	e.pending = append(e.pending, suspect{m, settled, r1})
	e.mu.Unlock()
}

// takePending returns the suspects of this round and starts the next: a
// round's judgement is about the rejections of that round only.
func (e *evidence) takePending() []suspect {
	e.mu.Lock()
	defer e.mu.Unlock()
	pending := e.pending
	e.pending = nil
	return pending
}

// needsControl: some suspect has no acceptance sent after its rejection.
func (e *evidence) needsControl(pending []suspect) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range pending {
		if !acceptedAfter(e.accepted, s.r1.url, s.r1.answered) {
			return true
		}
	}
	return false
}

// prove records and returns the proof for m if r1 and r2 make one.
func (e *evidence) prove(m *Measurement, r1, r2 outcome) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := proven(r1, e.accepted, r2)
	if ok {
		e.proofs = append(e.proofs, Proof{
			Measurement: *m, URL: r1.url, Reason: r2.reason,
			R1: Exchange{r1.sent, r1.answered}, A: Exchange{a.sent, a.answered}, R2: Exchange{r2.sent, r2.answered},
		})
	}
	return ok
}

// controlSeries returns the control's series for both APIs (index: tagged).
// source is default_source, already validated by the plugin; anything that
// would not be a valid source falls back to the fixed one.
func controlSeries(source string) [2]Series {
	if !validSource(source) {
		source = defaultControlSource
	}
	tags := string(AppendTagObject(nil, [][2]string{{"source", source}}))
	return [2]Series{{Source: source}, {Tags: tags}}
}

func validSource(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// judge completes or refutes the proof for every suspect of this round
// (see flush.rounds): a control request if no acceptance came after some
// rejection, then R2 for each suspect. What is not proven stays unsettled,
// with one error for all of them.
func (f *flush) judge() {
	pending := f.evidence.takePending()
	if len(pending) == 0 {
		return
	}
	if err := f.mayStart(); err != nil {
		f.keep(pending, err)
		return
	}
	if f.evidence.needsControl(pending) {
		o, err := f.control()
		switch {
		case err != nil:
			f.keep(pending, err)
			return
		case o.kind != delivered || f.evidence.needsControl(pending):
			why := errNoEvidence
			if o.err != nil {
				why = fmt.Errorf("%w (the control measurement got: %w)", errNoEvidence, o.err)
			}
			f.keep(pending, why)
			return
		}
	}
	f.each(len(pending), func(i int) error { return f.retest(&pending[i]) })
}

// keep leaves the suspects unsettled, with one error naming the first.
func (f *flush) keep(pending []suspect, why error) {
	s := pending[0]
	f.leave(fmt.Errorf("librato rejected %d measurement(s) sent alone (e.g. %s, %s: %s), but %w",
		len(pending), s.m.Name, s.m.Series, s.r1.reason, why))
}

// control sends the control measurement; its acceptance is recorded as
// evidence like any other.
func (f *flush) control() (outcome, error) {
	f.s.stats.Controls.Incr(1)
	m := Measurement{Name: ControlName, Series: &f.s.control[index(f.ep.Tagged)], Time: f.s.clock.Now().Unix(), Value: 1}
	body, err := f.s.encode([]Measurement{m}, f.ep.Tagged)
	if err != nil {
		return outcome{}, err
	}
	defer body.release()
	return f.exchange(body, 1)
}

// retest sends a suspect alone again (R2): a rejection now, after an
// acceptance, is the proof; an acceptance delivers it.
func (f *flush) retest(s *suspect) error {
	pts := []Measurement{*s.m}
	settled := []bool{false}
	body, err := f.s.encode(pts, f.ep.Tagged)
	if err != nil {
		return err
	}
	defer body.release()
	o, err := f.exchange(body, 1)
	if err != nil {
		return err
	}
	switch o.kind {
	case rejected:
		if f.evidence.prove(s.m, s.r1, o) {
			f.drop(s.m, s.settled, o)
			return nil
		}
		f.leave(fmt.Errorf("librato rejected %s (%s) twice, but without an acceptance between the two; kept: %w", s.m.Name, s.m.Series, o.err))
		return nil
	case delivered:
		f.delivered(pts, settled, o, false)
		*s.settled = true
		return nil
	}
	return f.answered(pts, settled, o, extraTry)
}

func index(tagged bool) int {
	if tagged {
		return 1
	}
	return 0
}
