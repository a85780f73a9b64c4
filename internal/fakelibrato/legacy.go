package fakelibrato

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

// legacyDecoder is libratoapi's, refusing numbers sent as strings: the
// fake has always held the output plugin to real JSON numbers.
var legacyDecoder = libratoapi.Decoder{StrictNumbers: true}

// decodeLegacy validates a POST /v1/metrics body with libratoapi's rules.
// Every measurement is validated and converted, even after the first
// error, so the fault hook sees all gauges; the answer names the first
// problem, gauges before counters, as the fake always reported.
func (s *Server) decodeLegacy(body []byte) outcome {
	ms, aerr := legacyDecoder.LegacyJSON(body, nil)
	if aerr != nil {
		return outcome{err: aerr}
	}
	out := outcome{status: http.StatusOK}
	now := s.opts.Now()
	w := libratoapi.Window{MaxAge: s.opts.MaxPast}
	for _, kind := range []libratoapi.Kind{libratoapi.Gauge, libratoapi.Counter} {
		for i := range ms {
			m := &ms[i]
			if m.Kind != kind {
				continue
			}
			if fe := libratoapi.Validate(m, now, w); fe != nil && out.err == nil {
				out.err = fe.Legacy(m.Name)
			}
			if kind == libratoapi.Gauge {
				out.gauges = append(out.gauges, gaugeOf(m))
			} else {
				out.counters = append(out.counters, gaugeOf(m))
			}
		}
	}
	return out
}

// gaugeOf keeps what the fake records of a legacy measurement: summary
// fields only for a complex gauge, as counters and plain gauges have none.
func gaugeOf(m *libratoapi.Measurement) Gauge {
	g := Gauge{Name: m.Name, Source: m.Source, Value: m.Value, MeasureTime: m.Time}
	if m.Kind == libratoapi.Gauge && m.HasCount {
		g.Value = 0
		g.Count, g.Sum = m.Count, m.Sum
		g.Min, g.HasMin = m.Min, m.HasMin
		g.Max, g.HasMax = m.Max, m.HasMax
		g.SumSquares, g.HasSumSquares = m.SumSquares, m.HasSumSquares
	}
	return g
}

// storeLegacy commits atomically: a type conflict with an earlier request
// (or within this one) rejects the whole payload, like Librato.
func (s *Server) storeLegacy(ex *exchange, out outcome) *libratoapi.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex.gen != s.gen {
		return nil // Reset happened mid-request: accept but forget
	}
	pending := make(map[string]libratoapi.Kind)
	if e := s.claimKinds(pending, out.gauges, libratoapi.Gauge); e != nil {
		return e
	}
	if e := s.claimKinds(pending, out.counters, libratoapi.Counter); e != nil {
		return e
	}
	for name, k := range pending {
		s.kinds[name] = k
	}
	s.gauges = append(s.gauges, out.gauges...)
	s.counters = append(s.counters, out.counters...)
	return nil
}

// claimKinds must be called with s.mu held. Names are case-insensitive.
// A type is state of the account, not a rule of one request, so this
// check lives here rather than in libratoapi.
func (s *Server) claimKinds(pending map[string]libratoapi.Kind, list []Gauge, k libratoapi.Kind) *libratoapi.Error {
	for _, g := range list {
		key := strings.ToLower(g.Name)
		have, ok := pending[key]
		if !ok {
			have, ok = s.kinds[key]
		}
		if ok && have != k {
			msg := fmt.Sprintf("'%s' is a %s, but was submitted as different type", g.Name, have)
			return (&libratoapi.FieldError{Field: "type", Message: msg}).Legacy(g.Name)
		}
		pending[key] = k
	}
	return nil
}
