package delivery

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// The search for the measurements of a request Librato rejected.
//
// Librato rejects a whole request for one bad measurement and says which
// field it did not like (params.<field>), often with the metric's name as
// context, or a source it refuses. That is a hint, not a verdict: it orders
// the search, it never convicts. A measurement is dropped only on its own
// proof (see proven): a request carrying only it, rejected. A server that
// gives a wrong reason makes the search cost a request or so more per
// rejected request; it cannot make a good measurement look bad, because
// every measurement the search gives up on stays buffered.
//
// The search ranks the request's measurements by how well they fit the hint,
// most suspect first:
//   - a name or source the error blames, compared as Librato does (without
//     case), before anything else;
//   - then by the field the error names: the oldest times first for
//     measure_time (the newest first when the message speaks of the future),
//     the longest names, sources or tag sets first for those fields, extreme
//     magnitudes (beyond 2^±64) first for value, sum, min, max and the like,
//     and measurements without the field last.
//
// Measurements of one metric (one series at one time) tie for the fields
// they share (time, source, tags), so they are tried together: they
// usually share a fate. When the ranking singles out a few measurements,
// each goes alone first, and the rest follow in one request; when it
// singles out a larger group, the group goes first, then the rest; when it
// tells nothing apart, the request is halved. Should the guess be wrong (the
// measurements tried first are all accepted), the rest is searched by
// halving only: a wrong hint is not followed twice.

// maxAlone is the largest group of top suspects sent one per request, about
// the fields of one metric.
const maxAlone = 4

// try says how a request came about, for the split budget and the search.
type try uint8

const (
	batchTry try = iota // one of the flush's batches
	extraTry            // a part of a split or of a search, paid from the split budget
	blindTry            // a part below a guess that was wrong: searched by halving only
)

// hint is what a rejection says about the measurements it is about.
type hint struct {
	fields         []string // the params fields holding messages, sorted
	names, sources []string // names and sources the error blames
	future         bool     // the message speaks of the future (times too new)
}

func hintOf(o outcome) hint {
	return hint{fields: o.fields, names: o.names, sources: o.sources,
		future: strings.Contains(strings.ToLower(o.reason), "future")}
}

// suspicion is how well a measurement fits a hint: higher is more suspect.
type suspicion struct {
	blamed bool  // its name or source is one the error names
	score  int64 // its rank by the field the error names
}

func compareSuspicion(a, b suspicion) int {
	if a.blamed != b.blamed {
		if a.blamed {
			return 1
		}
		return -1
	}
	return cmp.Compare(a.score, b.score)
}

// suspicionOf ranks m by h. Only the first field the ranking knows counts:
// scores of different fields do not add up.
func (h *hint) suspicionOf(m *Measurement) suspicion {
	s := suspicion{blamed: containsFold(h.names, m.Name) || containsFold(h.sources, m.Series.Source)}
	for _, field := range h.fields {
		if score, ok := fieldScore(field, m, h.future); ok {
			s.score = score
			break
		}
	}
	return s
}

// fieldScore ranks m by one field Librato named; ok is false for a field
// the ranking does not know. A measurement without the field ranks below
// every one with it.
func fieldScore(field string, m *Measurement, future bool) (score int64, ok bool) {
	const lacks = math.MinInt64
	switch field {
	case "measure_time", "time":
		if future {
			return m.Time, true
		}
		return -m.Time, true
	case "name":
		return int64(len(m.Name)), true
	case "source":
		return int64(len(m.Series.Source)), true
	case "tags":
		return int64(len(m.Series.Tags)), true
	case "value":
		if m.Summary != nil {
			return lacks, true
		}
		return magnitude(m.Value), true
	case "count":
		if m.Summary == nil {
			return lacks, true
		}
		return -m.Summary.Count, true // Librato wants a positive count
	}
	if m.Summary == nil {
		if isSummaryField(field) {
			return lacks, true
		}
		return 0, false
	}
	sm := m.Summary
	switch field {
	case "sum":
		return magnitude(sm.Sum), true
	case "min":
		return magnitude(sm.Min), true
	case "max":
		return magnitude(sm.Max), true
	case "sum_squares":
		return magnitude(sm.SumSquares), true
	case "stddev", "std_dev":
		return magnitude(sm.Std), true
	}
	return 0, false
}

func isSummaryField(field string) bool {
	switch field {
	case "sum", "min", "max", "sum_squares", "stddev", "std_dev", "last":
		return true
	}
	return false
}

// magnitude ranks a value by how far its binary exponent is from 0, when
// that is extreme (beyond ±extremeExponent): the huge and the tiny first,
// which is where number rules bite. Ordinary values tie, so a rule about
// them is searched by halving rather than by a guess that is mostly wrong.
func magnitude(v float64) int64 {
	_, exp := math.Frexp(v)
	if exp < 0 {
		exp = -exp
	}
	if exp <= extremeExponent {
		return 0
	}
	return int64(exp)
}

// extremeExponent: 2^64 is about 1.8e19, beyond any counter of bytes.
const extremeExponent = 64

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// searchStep is one step of the search: pts[:alone] go one per request,
// then pts[alone:cut] and pts[cut:] as one request each (the latter only
// when cut < len(pts)).
type searchStep struct {
	alone, cut int
	guess      bool // the step follows the hint rather than halving
}

// requests is what the step sends for n measurements.
func (s searchStep) requests(n int) int {
	if s.cut < n {
		return s.alone + 2
	}
	return s.alone + 1
}

// planSearch orders pts (n ≥ 2) most suspect first and returns the next
// step. With guess false, or a hint that tells nothing apart, it halves:
// the most suspect half first.
func planSearch(pts []Measurement, h hint, guess bool) searchStep {
	n := len(pts)
	// Ties keep time order: the rest of a metric, and an age limit's
	// prefix, stay together in the halves.
	slices.SortStableFunc(pts, func(a, b Measurement) int { return cmp.Compare(a.Time, b.Time) })
	slices.SortStableFunc(pts, func(a, b Measurement) int {
		return compareSuspicion(h.suspicionOf(&b), h.suspicionOf(&a))
	})
	top := h.suspicionOf(&pts[0])
	if !guess || compareSuspicion(top, h.suspicionOf(&pts[n-1])) == 0 {
		return searchStep{cut: n / 2}
	}
	k := 1
	for k < n && compareSuspicion(top, h.suspicionOf(&pts[k])) == 0 {
		k++
	}
	switch {
	case k <= maxAlone:
		return searchStep{alone: k, cut: n, guess: true}
	case k <= n/2:
		return searchStep{cut: k, guess: true}
	}
	return searchStep{cut: n / 2}
}

// search sends the parts of a step. A guess whose parts were all accepted
// was wrong: the rest is searched blind.
func (f *flush) search(pts []Measurement, settled []bool, step searchStep, t try) error {
	next := extraTry
	if t == blindTry {
		next = blindTry
	}
	for i := range step.alone {
		if err := f.send(pts[i:i+1], settled[i:i+1], next); err != nil {
			return err
		}
	}
	first := step.alone
	if step.cut < len(pts) {
		if err := f.send(pts[first:step.cut], settled[first:step.cut], next); err != nil {
			return err
		}
		first = step.cut
	}
	if step.guess && allSettled(settled[:first]) {
		next = blindTry
	}
	return f.send(pts[first:], settled[first:], next)
}

func allSettled(settled []bool) bool {
	for _, ok := range settled {
		if !ok {
			return false
		}
	}
	return true
}
