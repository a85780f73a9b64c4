package simlibrato

import (
	"time"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

// Rules are the account's settings and rules Librato may apply beyond its
// documented ones (libratoapi.Validate), as a server-side change would: the
// client does not know them.
type Rules struct {
	// MaxNameLen is the longest name Librato takes: 255 as documented; a
	// smaller one is a rule the client does not know, answered
	// {"errors":{"params":{"name":["is too long"]}}}.
	MaxNameLen int
	// PastWindow: measurements older than this are "too far in the past"
	// (libratoapi.Window's MaxAge; Librato documents no window).
	PastWindow time.Duration
	// QuirkSources rejects sources of the form digits.digits ("1.1"), as
	// Librato was seen to (librato/librato-metrics#65).
	QuirkSources bool
	// TaggedEnabled: the account takes tag-based measurements; otherwise
	// /v1/measurements answers 403 "not enabled".
	TaggedEnabled bool
	// TaggedPartial: the tagged API stores the valid measurements of a
	// request and reports the invalid ones in a 202 summary, instead of
	// failing the whole request with 400.
	TaggedPartial bool
}

// Valid reports whether Librato would store m at now.
func (r *Rules) Valid(m *Measurement, tagged bool, now time.Time) bool {
	am := apiMeasurement(m, tagged)
	return r.check(&am, now) == nil
}

// check applies Librato's documented rules with the past window, then the
// extra rules, and returns the first problem.
func (r *Rules) check(m *libratoapi.Measurement, now time.Time) *libratoapi.FieldError {
	if fe := libratoapi.Validate(m, now, libratoapi.Window{MaxAge: r.PastWindow}); fe != nil {
		return fe
	}
	if r.MaxNameLen > 0 && len(m.Name) > r.MaxNameLen {
		return &libratoapi.FieldError{Field: "name", Message: "is too long"}
	}
	if m.Kind != libratoapi.Tagged && r.QuirkSources && quirkSource(m.Source) {
		return &libratoapi.FieldError{Field: "source", Message: m.Source + " is not a valid source name"}
	}
	return nil
}

// quirkSource reports whether s is digits.digits, \A[0-9]+\.[0-9]+\z.
func quirkSource(s string) bool {
	dot := -1
	for i := range len(s) {
		switch c := s[i]; {
		case c == '.' && dot < 0 && i > 0:
			dot = i
		case c < '0' || c > '9':
			return false
		}
	}
	return dot > 0 && dot < len(s)-1
}
