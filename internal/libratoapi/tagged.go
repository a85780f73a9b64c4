package libratoapi

import (
	"cmp"
	"slices"
)

// taggedState is one tagged decode in progress.
type taggedState struct {
	s       scanner
	strs    interner
	arena   []Tag  // all tags of the request; measurements hold sub-slices
	lower   []byte // scratch for lower-casing
	topTags []Tag
	topHas  bool
	time    topDefault
	schema  bool // the body does not fit the tagged API's schema
}

// Tagged decodes a POST /v1/measurements body and appends one Measurement
// (Kind Tagged) per measurement to dst. The schema is strict, as Librato's
// deserialiser is: an unknown key (such as "source" or "measure_time") or a
// value of the wrong JSON type fails the whole request with 400
// {"code":400,"message":"Unable to process JSON"}. Top-level "tags" and
// "time" are defaults; a measurement's own tags replace the top-level ones.
// An empty request is answered like Librato's field errors. Field rules are
// Validate's job.
func (Decoder) Tagged(body []byte, dst []Measurement) ([]Measurement, *Error) {
	start := len(dst)
	st := taggedState{s: scanner{b: body}}
	s := &st.s
	if s.peek() != '{' {
		return dst, TaggedSchemaError()
	}
	s.i++
	for first := true; !st.schema; {
		key, ok := s.member(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "tags":
			st.topTags, st.topHas = st.tags()
		case "time":
			st.time = st.timeValue()
		case "period":
			st.numberOrNull()
		case "measurements":
			// A repeated key replaces the earlier list, as in a map.
			dst = st.measurements(dst[:start])
		default:
			st.schema = true
		}
	}
	if !st.schema {
		s.end()
	}
	if s.failed || st.schema {
		return dst, TaggedSchemaError()
	}
	if len(dst) == start {
		return dst, (&FieldError{Field: "measurements", Message: MsgNoMeasurements}).Tagged("")
	}
	for i := start; i < len(dst); i++ {
		m := &dst[i]
		if m.given&fTags == 0 {
			m.Tags = st.topTags // replace, never merge
		}
		if m.given&fTime == 0 && st.time.given {
			m.Time, m.HasTime = st.time.n, st.time.has
			if st.time.bad {
				m.bad |= fTime
			}
		}
	}
	return dst, nil
}

func (st *taggedState) measurements(dst []Measurement) []Measurement {
	s := &st.s
	if s.null() {
		return dst
	}
	if s.peek() != '[' {
		st.schema = true
		return dst
	}
	s.i++
	for first := true; !st.schema && s.element(&first); {
		if s.peek() != '{' {
			st.schema = true
			return dst
		}
		dst = st.measurement(dst)
	}
	return dst
}

func (st *taggedState) measurement(dst []Measurement) []Measurement {
	s := &st.s
	dst = append(dst, Measurement{Kind: Tagged})
	m := &dst[len(dst)-1]
	s.i++ // '{'
	for first := true; !st.schema; {
		key, ok := s.member(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "name":
			switch kind, text := s.scalar(); kind {
			case 'n':
				m.Name = ""
			case '"':
				m.Name = st.strs.get(text)
			default:
				st.schema = true
			}
		case "value":
			st.number(m, fValue, &m.Value, &m.HasValue)
		case "count":
			st.count(m)
		case "sum":
			st.number(m, fSum, &m.Sum, &m.HasSum)
		case "min":
			st.number(m, fMin, &m.Min, &m.HasMin)
		case "max":
			st.number(m, fMax, &m.Max, &m.HasMax)
		case "last":
			st.number(m, fLast, &m.Last, &m.HasLast)
		case "stddev":
			st.number(m, fStddev, &m.Stddev, &m.HasStddev)
		case "time":
			t := st.timeValue()
			m.given &^= fTime
			m.bad &^= fTime
			m.Time, m.HasTime = t.n, t.has
			if t.given {
				m.given |= fTime
				if t.bad {
					m.bad |= fTime
				}
			}
		case "period":
			st.numberOrNull()
		case "tags":
			tags, has := st.tags()
			m.Tags = tags
			m.given &^= fTags
			if has {
				m.given |= fTags
			}
		case "attributes":
			if !s.null() {
				if s.peek() != '{' {
					st.schema = true
					break
				}
				s.skip(1)
			}
		default:
			st.schema = true
		}
	}
	return dst
}

// scalarNumber reads a value that the schema types as a number: the
// literal, or nil for null; anything else breaks the schema.
func (st *taggedState) scalarNumber() (lit []byte, present bool) {
	kind, text := st.s.scalar()
	switch kind {
	case 'n':
		return nil, false
	case '0':
		return text, true
	}
	st.schema = true
	return nil, false
}

func (st *taggedState) numberOrNull() { st.scalarNumber() }

func (st *taggedState) number(m *Measurement, f field, v *float64, has *bool) {
	lit, ok := st.scalarNumber()
	m.bad &^= f
	m.huge &^= f
	*v, *has = 0, ok
	if ok {
		setNumber(m, f, v, lit)
	}
}

func (st *taggedState) count(m *Measurement) {
	lit, ok := st.scalarNumber()
	m.bad &^= fCount
	m.Count, m.HasCount = 0, ok
	if !ok {
		return
	}
	n, isInt := parseInteger(lit)
	if !isInt {
		m.bad |= fCount
	}
	m.Count = n
}

func (st *taggedState) timeValue() topDefault {
	lit, ok := st.scalarNumber()
	if !ok {
		return topDefault{}
	}
	if n, isInt := parseInteger(lit); isInt {
		return topDefault{given: true, n: n, has: true}
	}
	return topDefault{given: true, bad: true}
}

// tags reads a tags object into the arena: nil, false for null. Keys and
// values are lower-cased as Librato stores them, sorted by key, and a
// repeated key keeps its last value, as decoding into a map would. A tag
// that breaks the rules is kept as sent, for the error message.
func (st *taggedState) tags() ([]Tag, bool) {
	s := &st.s
	if s.null() {
		return nil, false
	}
	if s.peek() != '{' {
		st.schema = true
		return nil, false
	}
	s.i++
	start := len(st.arena)
	for first := true; ; {
		key, ok := s.member(&first)
		if !ok {
			break
		}
		k := st.tagString(key, MaxTagKeyLen, &tagKeyByte)
		if s.peek() != '"' {
			st.schema = true
			return nil, false
		}
		v := st.tagString(s.str(), MaxTagValueLen, &tagValueByte)
		st.arena = append(st.arena, Tag{Key: k, Value: v})
	}
	tags := st.arena[start:]
	slices.SortStableFunc(tags, func(a, b Tag) int { return cmp.Compare(a.Key, b.Key) })
	out := tags[:0]
	for i := range tags {
		if i+1 < len(tags) && tags[i+1].Key == tags[i].Key {
			continue
		}
		out = append(out, tags[i])
	}
	st.arena = st.arena[:start+len(out)]
	// Full slice expression: appending to one measurement's tags must not
	// overwrite the next one's.
	return st.arena[start:len(st.arena):len(st.arena)], true
}

// tagString interns b, lower-cased when it is valid: lower-casing keeps
// validity (the charsets hold both cases), and an invalid tag is kept as
// sent for the error message.
func (st *taggedState) tagString(b []byte, maxLen int, set *[256]bool) string {
	if !hasUpper(b) || !bytesIn(b, maxLen, set) {
		return st.strs.get(b)
	}
	st.lower = append(st.lower[:0], b...)
	for i, c := range st.lower {
		if c >= 'A' && c <= 'Z' {
			st.lower[i] = c + 'a' - 'A'
		}
	}
	return st.strs.get(st.lower)
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

func bytesIn(b []byte, maxLen int, set *[256]bool) bool {
	if len(b) == 0 || len(b) > maxLen {
		return false
	}
	for _, c := range b {
		if !set[c] {
			return false
		}
	}
	return true
}
