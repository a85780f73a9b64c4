package delivery

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

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

func (r *rejectionLog) add(p *Measurement, reason string) {
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
