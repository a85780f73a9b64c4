package libratoapi

import "slices"

// legacyState is one legacy JSON decode in progress.
type legacyState struct {
	s      scanner
	opts   Decoder
	names  interner
	err    *Error // first structural problem; syntax errors still win
	source topDefault
	time   topDefault
	// Where the current "gauges" and "counters" sections sit in dst, so a
	// repeated key replaces the earlier section as a JSON object would.
	sec [2]struct{ start, end int }
}

// LegacyJSON decodes a POST /v1/metrics JSON body and appends one
// Measurement per gauge and counter to dst:
//   - "gauges" and "counters" as an array of objects or as an object keyed
//     by metric name (an inner "name" overrides the key; entries are put in
//     key order);
//   - top-level "source" and "measure_time" as defaults for entries lacking
//     their own; "period", "attributes" and unknown keys are ignored;
//   - complex gauges with count, sum, min, max, sum_squares.
//
// It returns Librato's answer when the body does not parse, when gauges or
// counters are not arrays or objects of objects, or when there is no
// measurement at all. Field rules are Validate's job; on error dst may hold
// a partial decode, useful for diagnostics only.
func (d Decoder) LegacyJSON(body []byte, dst []Measurement) ([]Measurement, *Error) {
	start := len(dst)
	st := legacyState{s: scanner{b: body}, opts: d}
	st.sec[0].start, st.sec[1].start = -1, -1
	s := &st.s
	if s.peek() != '{' {
		return dst, LegacyParseError()
	}
	s.i++
	for first := true; ; {
		key, ok := s.member(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "gauges":
			dst = st.section(dst, Gauge)
		case "counters":
			dst = st.section(dst, Counter)
		case "source":
			st.source = st.topSource()
		case "measure_time":
			st.time = st.topTime()
		default:
			s.skip(1)
		}
	}
	s.end()
	if s.failed {
		return dst, LegacyParseError()
	}
	for i := start; i < len(dst); i++ {
		st.applyDefaults(&dst[i])
	}
	switch {
	case st.err != nil:
		return dst, st.err
	case len(dst) == start:
		return dst, (&FieldError{Field: "gauges", Message: MsgNoMeasurements}).Legacy("")
	}
	return dst, nil
}

func (st *legacyState) invalid(field string) {
	if st.err == nil {
		st.err = (&FieldError{Field: field, Message: msgInvalid}).Legacy("")
	}
}

// section decodes the value of "gauges" or "counters".
func (st *legacyState) section(dst []Measurement, kind Kind) []Measurement {
	s := &st.s
	field := "gauges"
	if kind == Counter {
		field = "counters"
	}
	dst = st.dropSection(dst, kind)
	start := len(dst)
	switch s.peek() {
	case 'n':
		s.literal()
	case '[':
		s.i++
		for first := true; s.element(&first); {
			if s.peek() != '{' {
				st.invalid(field)
				s.skip(1)
				continue
			}
			dst = st.entry(dst, kind, "")
		}
	case '{':
		s.i++
		for first := true; ; {
			key, ok := s.member(&first)
			if !ok {
				break
			}
			name := st.names.get(key)
			if s.peek() != '{' {
				st.invalid(field)
				s.skip(1)
				continue
			}
			dst = st.entry(dst, kind, name)
		}
		dst = dst[:start+len(sortByKey(dst[start:]))]
	default:
		st.invalid(field)
		s.skip(1)
	}
	st.sec[kind] = struct{ start, end int }{start, len(dst)}
	return dst
}

// dropSection removes an earlier section of the same kind: with a repeated
// key, the last one wins, as when decoding into a map.
func (st *legacyState) dropSection(dst []Measurement, kind Kind) []Measurement {
	old := st.sec[kind]
	if old.start < 0 {
		return dst
	}
	dst = slices.Delete(dst, old.start, old.end)
	if other := &st.sec[1-kind]; other.start >= old.end {
		n := old.end - old.start
		other.start -= n
		other.end -= n
	}
	return dst
}

// entry decodes one gauge or counter object; key is its object-form key.
func (st *legacyState) entry(dst []Measurement, kind Kind, key string) []Measurement {
	s := &st.s
	dst = append(dst, Measurement{Kind: kind, Name: key, key: key})
	m := &dst[len(dst)-1]
	s.i++ // '{'
	for first := true; ; {
		k, ok := s.member(&first)
		if !ok {
			break
		}
		switch string(k) {
		case "name":
			st.name(m, key)
		case "source":
			st.ownSource(m)
		case "measure_time":
			t := st.topTime() // same rules as the top-level default
			m.given &^= fTime
			m.bad &^= fTime
			m.Time, m.HasTime = 0, false
			if t.given {
				m.given |= fTime
				m.Time, m.HasTime = t.n, t.has
				if t.bad {
					m.bad |= fTime
				}
			}
		case "value":
			st.number(m, fValue, &m.Value, &m.HasValue)
		case "count":
			st.integer(m, fCount, &m.Count, &m.HasCount)
		case "sum":
			st.number(m, fSum, &m.Sum, &m.HasSum)
		case "min":
			st.number(m, fMin, &m.Min, &m.HasMin)
		case "max":
			st.number(m, fMax, &m.Max, &m.HasMax)
		case "sum_squares":
			st.number(m, fSumSquares, &m.SumSquares, &m.HasSumSquares)
		default:
			s.skip(1)
		}
	}
	return dst
}

// name: a string overrides the key, null means "not given".
func (st *legacyState) name(m *Measurement, key string) {
	kind, text := st.s.scalar()
	m.bad &^= fName
	switch kind {
	case 'n':
		m.Name = key
	case '"':
		m.Name = st.names.get(text)
	default:
		m.Name = ""
		m.bad |= fName
	}
}

func (st *legacyState) ownSource(m *Measurement) {
	src := st.topSource()
	m.given &^= fSource
	m.bad &^= fSource
	m.Source = ""
	if src.given {
		m.given |= fSource
		m.Source = src.text
		if src.bad {
			m.bad |= fSource
		}
	}
}

// topSource reads a source value. A non-string keeps its JSON text for
// the error message ("5 is not a valid source name").
func (st *legacyState) topSource() topDefault {
	kind, text := st.s.scalar()
	switch kind {
	case 'n':
		return topDefault{}
	case '"':
		return topDefault{given: true, text: st.names.get(text)}
	default:
		return topDefault{given: true, bad: true, text: string(text)}
	}
}

// topTime reads a measure_time: an integer literal, else marked bad.
func (st *legacyState) topTime() topDefault {
	kind, text := st.s.scalar()
	switch kind {
	case 'n':
		return topDefault{}
	case '0':
		if n, ok := parseInteger(text); ok {
			return topDefault{given: true, n: n, has: true}
		}
	}
	return topDefault{given: true, bad: true}
}

func (st *legacyState) applyDefaults(m *Measurement) {
	if m.given&fSource == 0 && st.source.given {
		m.given |= fSource
		m.Source = st.source.text
		if st.source.bad {
			m.bad |= fSource
		}
	}
	if m.given&fTime == 0 && st.time.given {
		m.given |= fTime
		m.Time, m.HasTime = st.time.n, st.time.has
		if st.time.bad {
			m.bad |= fTime
		}
	}
}

// number reads a value field: a JSON number, or (unless StrictNumbers) a
// string holding one, as l2met sent. null means "not given".
func (st *legacyState) number(m *Measurement, f field, v *float64, has *bool) {
	kind, text := st.s.scalar()
	m.bad &^= f
	m.huge &^= f
	*v, *has = 0, kind != 'n'
	if kind != '0' && (kind != '"' || st.opts.StrictNumbers) {
		if *has {
			m.bad |= f
		}
		return
	}
	setNumber(m, f, v, text)
}

func setNumber(m *Measurement, f field, v *float64, text []byte) {
	n, state := parseNumber(text)
	switch state {
	case numBad:
		m.bad |= f
	case numHuge:
		m.huge |= f
	default:
		*v = n
	}
}

// integer reads an integer field (count) like number.
func (st *legacyState) integer(m *Measurement, f field, v *int64, has *bool) {
	kind, text := st.s.scalar()
	m.bad &^= f
	*v, *has = 0, kind != 'n'
	if kind != '0' && (kind != '"' || st.opts.StrictNumbers) {
		if *has {
			m.bad |= f
		}
		return
	}
	n, ok := parseInteger(text)
	if !ok {
		m.bad |= f
		return
	}
	*v = n
}
