package libratoapi

import (
	"bytes"
	"hash/maphash"
	"net/http"
)

// formState is one form decode in progress.
type formState struct {
	strs   interner
	key    []byte // unescaped key of the current pair
	val    []byte // unescaped value of the current pair
	source topDefault
	time   topDefault
	// keys holds the unescaped keys of the entries back to back and refs
	// where each is, so a key costs no string unless it becomes a name.
	keys []byte
	refs []formRef
	// index finds a keyed entry by a hash of kind and key, chaining
	// collisions through formRef.next: hashing the arena's bytes costs no
	// string per entry. Clients normally send an entry's fields together,
	// which the last-entry check in entry catches first.
	index map[uint64]int
	// appendSeen records the fields of the last "gauges[][…]" entry of each
	// kind: Rack starts a new array element when a field repeats.
	appendAt   [2]int
	appendSeen [2]field
}

// formRef locates one keyed entry: its key in formState.keys, its dst index.
type formRef struct {
	kind       Kind
	start, end int
	at         int
	next       int // the previous ref with the same hash, or -1
}

// formSeed keys the index's hash, so a client cannot craft keys that
// collide and make lookups quadratic.
var formSeed = maphash.MakeSeed()

func formHash(kind Kind, key []byte) uint64 {
	return maphash.Bytes(formSeed, key) ^ uint64(kind)
}

// LegacyForm decodes a form-encoded POST /v1/metrics body
// (gauges[0][name]=cpu&gauges[0][value]=1&source=web1), the encoding
// Librato accepted besides JSON. The bracketed index is an object key, as
// Rack decodes it: an inner name overrides it, and gauges[cpu][value]=1
// names the gauge "cpu"; gauges[][name]=… appends array elements. Every
// value is text, so numbers are parsed from it. Entries keep the order of
// their first field. Unknown keys are ignored; on error dst may hold a
// partial decode.
func (Decoder) LegacyForm(body []byte, dst []Measurement) ([]Measurement, *Error) {
	start := len(dst)
	st := formState{appendAt: [2]int{-1, -1}}
	for len(body) > 0 {
		var pair []byte
		pair, body, _ = bytes.Cut(body, []byte{'&'})
		if len(pair) == 0 {
			continue
		}
		k, v, _ := bytes.Cut(pair, []byte{'='})
		var ok1, ok2 bool
		st.key, ok1 = formUnescape(st.key[:0], k)
		st.val, ok2 = formUnescape(st.val[:0], v)
		if !ok1 || !ok2 {
			return dst, RequestError(http.StatusBadRequest, MsgFormParse)
		}
		dst = st.pair(dst)
	}
	for _, r := range st.refs {
		if m := &dst[r.at]; m.given&fName == 0 { // gauges[cpu][value]=1 names it "cpu"
			m.Name = st.strs.get(st.keys[r.start:r.end])
		}
	}
	for i := start; i < len(dst); i++ {
		m := &dst[i]
		if m.given&fSource == 0 && st.source.given {
			m.given |= fSource
			m.Source = st.source.text
		}
		if m.given&fTime == 0 && st.time.given {
			m.given |= fTime
			m.Time, m.HasTime = st.time.n, st.time.has
			if st.time.bad {
				m.bad |= fTime
			}
		}
	}
	if len(dst) == start {
		return dst, (&FieldError{Field: "gauges", Message: MsgNoMeasurements}).Legacy("")
	}
	return dst, nil
}

// pair applies one key=value pair.
func (st *formState) pair(dst []Measurement) []Measurement {
	top, rest, nested := bytes.Cut(st.key, []byte{'['})
	if !nested {
		switch string(top) {
		case "source":
			st.source = topDefault{given: true, text: st.strs.get(st.val)}
		case "measure_time":
			st.time = formTime(st.val)
		}
		return dst
	}
	var kind Kind
	switch string(top) {
	case "gauges":
		kind = Gauge
	case "counters":
		kind = Counter
	default:
		return dst
	}
	// rest is "<key>][<field>]"; anything deeper (attributes) is ignored.
	key, rest, ok := bytes.Cut(rest, []byte("]["))
	if !ok || len(rest) == 0 || rest[len(rest)-1] != ']' || bytes.ContainsAny(rest[:len(rest)-1], "[]") {
		return dst
	}
	f, known := formField(rest[:len(rest)-1])
	if !known {
		return dst
	}
	dst, i := st.entry(dst, kind, key, f)
	st.set(&dst[i], f)
	return dst
}

// entry finds or creates the entry a pair belongs to and returns its index.
func (st *formState) entry(dst []Measurement, kind Kind, key []byte, f field) ([]Measurement, int) {
	if len(key) == 0 { // gauges[][field]: a repeated field starts a new element
		if at := st.appendAt[kind]; at >= 0 && st.appendSeen[kind]&f == 0 {
			st.appendSeen[kind] |= f
			return dst, at
		}
		dst = append(dst, Measurement{Kind: kind})
		st.appendAt[kind], st.appendSeen[kind] = len(dst)-1, f
		return dst, len(dst) - 1
	}
	if n := len(st.refs); n > 0 {
		if r := st.refs[n-1]; r.kind == kind && bytes.Equal(st.keys[r.start:r.end], key) {
			return dst, r.at
		}
	}
	if st.index == nil {
		st.index = make(map[uint64]int)
	}
	h := formHash(kind, key)
	head, ok := st.index[h]
	if !ok {
		head = -1
	}
	for i := head; i >= 0; i = st.refs[i].next {
		if r := st.refs[i]; r.kind == kind && bytes.Equal(st.keys[r.start:r.end], key) {
			return dst, r.at
		}
	}
	dst = append(dst, Measurement{Kind: kind})
	r := formRef{kind: kind, start: len(st.keys), end: len(st.keys) + len(key), at: len(dst) - 1, next: head}
	st.keys = append(st.keys, key...)
	st.index[h] = len(st.refs)
	st.refs = append(st.refs, r)
	return dst, r.at
}

func formField(b []byte) (field, bool) {
	switch string(b) {
	case "name":
		return fName, true
	case "source":
		return fSource, true
	case "measure_time":
		return fTime, true
	case "value":
		return fValue, true
	case "count":
		return fCount, true
	case "sum":
		return fSum, true
	case "min":
		return fMin, true
	case "max":
		return fMax, true
	case "sum_squares":
		return fSumSquares, true
	}
	return 0, false
}

// set stores st.val into field f of m; a repeated field overwrites.
func (st *formState) set(m *Measurement, f field) {
	m.bad &^= f
	m.huge &^= f
	switch f {
	case fName:
		m.given |= fName
		m.Name = st.strs.get(st.val)
	case fSource:
		m.given |= fSource
		m.Source = st.strs.get(st.val)
	case fTime:
		t := formTime(st.val)
		m.given |= fTime
		m.Time, m.HasTime = t.n, t.has
		if t.bad {
			m.bad |= fTime
		}
	case fCount:
		n, ok := parseInteger(st.val)
		m.Count, m.HasCount = n, true
		if !ok {
			m.bad |= fCount
		}
	case fValue:
		m.HasValue = true
		setNumber(m, f, &m.Value, st.val)
	case fSum:
		m.HasSum = true
		setNumber(m, f, &m.Sum, st.val)
	case fMin:
		m.HasMin = true
		setNumber(m, f, &m.Min, st.val)
	case fMax:
		m.HasMax = true
		setNumber(m, f, &m.Max, st.val)
	case fSumSquares:
		m.HasSumSquares = true
		setNumber(m, f, &m.SumSquares, st.val)
	}
}

func formTime(b []byte) topDefault {
	if n, ok := parseInteger(b); ok {
		return topDefault{given: true, n: n, has: true}
	}
	return topDefault{given: true, bad: true}
}

// formUnescape appends the URL-decoded b to dst ('+' is a space), and
// reports false for a malformed %-escape, as url.QueryUnescape does.
func formUnescape(dst, b []byte) ([]byte, bool) {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(b) {
				return dst, false
			}
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if !ok1 || !ok2 {
				return dst, false
			}
			dst = append(dst, hi<<4|lo)
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
