// Package simlibrato is a simulated Librato behind an http.RoundTripper: no
// sockets, no real time. It decodes request bodies as Librato would, stores
// the measurements it accepts, answers with faults a Plan chooses, and keeps a
// history of every operation (sent, stored, answered, answer read) for a
// checker to judge after the run. Time is whatever time.Now says: run it in a
// testing/synctest bubble and it is the bubble's fake clock.
package simlibrato

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Measurement is one measurement as Librato reads it from a request.
type Measurement struct {
	Name   string
	Source string // legacy API
	// Tags is the tagged API's tag set, lower-cased as Librato stores it,
	// sorted and joined as k=v,k=v.
	Tags  string
	Time  int64
	Value float64
	// Count is set for a complex gauge or an aggregated measurement.
	Count int64
	Sum   float64
}

// SeriesKey is the series as Librato keys it: names, sources and tags are
// case-insensitive.
func (m *Measurement) SeriesKey() string {
	return strings.ToLower(m.Name) + "\x00" + strings.ToLower(m.Source) + "\x00" + m.Tags
}

var (
	nameRe     = regexp.MustCompile(`\A[-.:_A-Za-z0-9]{1,255}\z`)
	tagNameRe  = regexp.MustCompile(`\A[-.:\w]{1,64}\z`)
	tagValueRe = regexp.MustCompile(`\A[-.:?\\/\w ]{1,255}\z`)
)

// errUnprocessable is the tagged API's answer to a body outside its schema.
var errUnprocessable = errors.New("unable to process JSON")

type legacyEntry struct {
	Name        string       `json:"name"`
	Source      *string      `json:"source"`
	Value       *json.Number `json:"value"`
	MeasureTime *json.Number `json:"measure_time"`
	Count       *json.Number `json:"count"`
	Sum         *json.Number `json:"sum"`
	Min         *json.Number `json:"min"`
	Max         *json.Number `json:"max"`
	SumSquares  *json.Number `json:"sum_squares"`
	Period      *json.Number `json:"period"`
}

// fieldError is one of Librato's per-measurement errors:
// {"errors":{"params":{field:[msg]}}}.
type fieldError struct {
	field, msg string
}

// decodeLegacy reads a /v1/metrics body: gauges and counters as an array or
// an object keyed by name, top-level source and measure_time as defaults.
// A measurement that cannot be read at all fails the request; per-field
// problems are returned per measurement.
func decodeLegacy(body []byte) ([]Measurement, []*fieldError, error) {
	var top struct {
		Gauges      json.RawMessage `json:"gauges"`
		Counters    json.RawMessage `json:"counters"`
		Source      *string         `json:"source"`
		MeasureTime *json.Number    `json:"measure_time"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, nil, fmt.Errorf("parsing body: %w", err)
	}
	var out []Measurement
	var problems []*fieldError
	for _, raw := range []json.RawMessage{top.Gauges, top.Counters} {
		entries, err := legacyEntries(raw)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			m, fe := legacyMeasurement(e, top.Source, top.MeasureTime)
			out = append(out, m)
			problems = append(problems, fe)
		}
	}
	return out, problems, nil
}

func legacyEntries(raw json.RawMessage) ([]legacyEntry, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '[' {
		var list []legacyEntry
		if err := decodeNumbers(raw, &list); err != nil {
			return nil, err
		}
		return list, nil
	}
	var byName map[string]legacyEntry
	if err := decodeNumbers(raw, &byName); err != nil {
		return nil, err
	}
	out := make([]legacyEntry, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		e := byName[name]
		if e.Name == "" {
			e.Name = name
		}
		out = append(out, e)
	}
	return out, nil
}

func legacyMeasurement(e legacyEntry, source *string, measureTime *json.Number) (Measurement, *fieldError) {
	m := Measurement{Name: e.Name}
	src := source
	if e.Source != nil {
		src = e.Source
	}
	if src != nil {
		m.Source = *src
	}
	t := measureTime
	if e.MeasureTime != nil {
		t = e.MeasureTime
	}
	var fe *fieldError
	note := func(field, msg string) {
		if fe == nil {
			fe = &fieldError{field, msg}
		}
	}
	if t != nil {
		n, err := t.Int64()
		if err != nil {
			note("measure_time", "is not a number")
		}
		m.Time = n
	}
	switch {
	case e.Count != nil:
		n, err := e.Count.Int64()
		if err != nil || n <= 0 {
			note("count", "must be positive")
		}
		m.Count = n
		if e.Sum == nil {
			note("sum", "is required")
		} else if f, err := e.Sum.Float64(); err == nil {
			m.Sum = f
		} else {
			note("sum", "is not a number")
		}
	case e.Value != nil:
		f, err := e.Value.Float64()
		if err != nil {
			note("value", "is not a number")
		}
		m.Value = f
	default:
		note("value", "is required")
	}
	return m, fe
}

type taggedEntry struct {
	Name       string            `json:"name"`
	Value      *json.Number      `json:"value"`
	Count      *json.Number      `json:"count"`
	Sum        *json.Number      `json:"sum"`
	Min        *json.Number      `json:"min"`
	Max        *json.Number      `json:"max"`
	Last       *json.Number      `json:"last"`
	Stddev     *json.Number      `json:"stddev"`
	Time       *json.Number      `json:"time"`
	Period     *json.Number      `json:"period"`
	Tags       map[string]string `json:"tags"`
	Attributes json.RawMessage   `json:"attributes"`
}

// decodeTagged reads a /v1/measurements body into a strict schema, as
// Librato does: an unknown key fails the whole request.
func decodeTagged(body []byte) ([]Measurement, []*fieldError, error) {
	var top struct {
		Tags         map[string]string `json:"tags"`
		Time         *json.Number      `json:"time"`
		Period       *json.Number      `json:"period"`
		Measurements []taggedEntry     `json:"measurements"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return nil, nil, errUnprocessable
	}
	out := make([]Measurement, 0, len(top.Measurements))
	problems := make([]*fieldError, 0, len(top.Measurements))
	for _, e := range top.Measurements {
		m := Measurement{Name: e.Name}
		var fe *fieldError
		note := func(field, msg string) {
			if fe == nil {
				fe = &fieldError{field, msg}
			}
		}
		tags := top.Tags
		if e.Tags != nil {
			tags = e.Tags // per-measurement tags replace the top level's
		}
		if len(tags) == 0 {
			note("tags", "is required")
		}
		if len(tags) > 50 {
			note("tags", "too many tags")
		}
		pairs := make([]string, 0, len(tags))
		for k, v := range tags {
			if !tagNameRe.MatchString(k) {
				note("tags", "invalid tag name "+k)
			}
			if !tagValueRe.MatchString(v) {
				note("tags", "invalid tag value "+v)
			}
			pairs = append(pairs, strings.ToLower(k)+"="+strings.ToLower(v))
		}
		slices.Sort(pairs)
		m.Tags = strings.Join(pairs, ",")
		t := top.Time
		if e.Time != nil {
			t = e.Time
		}
		if t != nil {
			n, err := t.Int64()
			if err != nil {
				note("time", "is not a number")
			}
			m.Time = n
		}
		switch {
		case e.Count != nil:
			n, err := e.Count.Int64()
			if err != nil || n <= 0 {
				note("count", "must be positive")
			}
			m.Count = n
			if e.Sum == nil {
				note("sum", "is required")
			} else if f, err := e.Sum.Float64(); err == nil {
				m.Sum = f
			}
		case e.Value != nil:
			f, err := e.Value.Float64()
			if err != nil {
				note("value", "is not a number")
			}
			m.Value = f
		default:
			note("value", "is required")
		}
		out = append(out, m)
		problems = append(problems, fe)
	}
	return out, problems, nil
}

func decodeNumbers(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parsing measurements: %w", err)
	}
	return nil
}
