package simlibrato

import (
	"regexp"
	"strings"
	"time"
)

// Rules are Librato's per-measurement rules and the account's settings.
// Some go beyond what the client knows, as a server-side change would.
type Rules struct {
	// MaxNameLen is the longest name Librato takes: 255 as documented; a
	// smaller one is a rule the client does not know, answered
	// {"errors":{"params":{"name":["is too long"]}}}.
	MaxNameLen int
	// PastWindow: measurements older than this are "too far in the past".
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

var quirkSource = regexp.MustCompile(`\A[0-9]+\.[0-9]+\z`)

// Valid reports whether Librato would store m at now.
func (r *Rules) Valid(m *Measurement, tagged bool, now time.Time) bool {
	return r.check(m, tagged, now) == nil
}

func (r *Rules) check(m *Measurement, tagged bool, now time.Time) *fieldError {
	maxName := r.MaxNameLen
	if maxName <= 0 {
		maxName = 255
	}
	switch {
	case !nameRe.MatchString(m.Name):
		return &fieldError{"name", "is invalid"}
	case len(m.Name) > maxName:
		return &fieldError{"name", "is too long"}
	}
	if !tagged {
		switch {
		case m.Source != "" && !nameRe.MatchString(m.Source),
			strings.EqualFold(m.Source, "all"),
			r.QuirkSources && quirkSource.MatchString(m.Source):
			return &fieldError{"source", m.Source + " is not a valid source name"}
		}
	}
	if m.Time != 0 && r.PastWindow > 0 && m.Time < now.Add(-r.PastWindow).Unix() {
		field := "measure_time"
		if tagged {
			field = "time"
		}
		return &fieldError{field, "is too far in the past"}
	}
	return nil
}
