package fakelibrato

import (
	"net/http"
	"strings"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

// decodeTagged validates a POST /v1/measurements body with libratoapi's
// schema and rules.
func (s *Server) decodeTagged(body []byte) outcome {
	out := s.decodeTaggedBody(body)
	if s.opts.TaggedDisabled {
		out.err = errTaggedOff // account-level refusal beats validation
	}
	return out
}

// decodeTaggedBody converts every measurement, even after the first error,
// so the fault hook sees them all; the whole request is rejected on any.
func (s *Server) decodeTaggedBody(body []byte) outcome {
	ms, aerr := libratoapi.DecodeTagged(body, nil)
	if aerr != nil {
		return outcome{err: aerr}
	}
	out := outcome{status: http.StatusAccepted}
	now := s.opts.Now()
	w := libratoapi.Window{MaxAge: s.opts.MaxPast}
	for i := range ms {
		m := &ms[i]
		if fe := libratoapi.Validate(m, now, w); fe != nil && out.err == nil {
			out.err = fe.Tagged(m.Name)
		}
		out.measurements = append(out.measurements, measurementOf(m, now.Unix()))
	}
	return out
}

// measurementOf keeps what the fake records: effective tags as a map, and
// the receive time when the request gave none.
func measurementOf(m *libratoapi.Measurement, now int64) Measurement {
	r := Measurement{Name: m.Name, Value: m.Value, Time: m.Time}
	if !m.HasTime && m.Time == 0 {
		r.Time = now
	}
	r.Tags = make(map[string]string, len(m.Tags))
	for _, t := range m.Tags {
		// libratoapi lower-cases valid tags only; the fake always
		// recorded every tag lower-cased.
		r.Tags[strings.ToLower(t.Key)] = strings.ToLower(t.Value)
	}
	if m.HasCount {
		r.Value = 0
		r.Count, r.Sum = m.Count, m.Sum
		r.Min, r.HasMin = m.Min, m.HasMin
		r.Max, r.HasMax = m.Max, m.HasMax
		r.Last, r.HasLast = m.Last, m.HasLast
		r.StdDev, r.HasStdDev = m.Stddev, m.HasStddev
	}
	return r
}

// storeTagged commits all measurements of an accepted request at once.
func (s *Server) storeTagged(ex *exchange, out outcome) *libratoapi.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex.gen == s.gen {
		s.measurements = append(s.measurements, cloneMeasurements(out.measurements)...)
	}
	return nil
}
