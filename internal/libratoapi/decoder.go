package libratoapi

import (
	"cmp"
	"slices"
)

// Decoder holds the options of the decoders. The zero value decodes as
// Librato did; the package-level functions use it.
type Decoder struct {
	// StrictNumbers refuses numbers given as JSON strings in legacy JSON
	// bodies ("is not a number"). Librato accepted them (l2met sent
	// "value":"1.5"); the test fake keeps refusing them, as it always has,
	// so the output plugin is held to sending real numbers.
	StrictNumbers bool
}

// DecodeLegacyJSON decodes a POST /v1/metrics JSON body; see Decoder.LegacyJSON.
func DecodeLegacyJSON(body []byte, dst []Measurement) ([]Measurement, *Error) {
	return Decoder{}.LegacyJSON(body, dst)
}

// DecodeLegacyForm decodes a form-encoded POST /v1/metrics body; see Decoder.LegacyForm.
func DecodeLegacyForm(body []byte, dst []Measurement) ([]Measurement, *Error) {
	return Decoder{}.LegacyForm(body, dst)
}

// DecodeTagged decodes a POST /v1/measurements body; see Decoder.Tagged.
func DecodeTagged(body []byte, dst []Measurement) ([]Measurement, *Error) {
	return Decoder{}.Tagged(body, dst)
}

// internSize is the number of slots of the per-request string cache.
const internSize = 64

// interner reuses strings within one request: sources, tag keys and values
// and often names repeat in every measurement of a batch, and a repeat then
// costs a comparison instead of an allocation. It is direct-mapped (a slot
// holds the last string hashed to it), so it needs no map.
type interner [internSize]string

func (c *interner) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := uint32(2166136261) // FNV-1a
	for _, x := range b {
		h = (h ^ uint32(x)) * 16777619
	}
	slot := &c[h%internSize]
	if *slot != string(b) { // the comparison does not allocate
		*slot = string(b)
	}
	return *slot
}

// topDefault is a top-level source or time, applied after the whole body
// is read because JSON may put it after the measurements.
type topDefault struct {
	given, bad bool
	text       string // source, or the time literal for messages
	n          int64
	has        bool
}

// sortByKey puts an object-form section in key order and keeps only the
// last entry of a repeated key, as decoding into a map would: JSON objects
// are unordered, and the order must not depend on the sender's map
// iteration.
func sortByKey(sec []Measurement) []Measurement {
	slices.SortStableFunc(sec, func(a, b Measurement) int { return cmp.Compare(a.key, b.key) })
	out := sec[:0]
	for i := range sec {
		if i+1 < len(sec) && sec[i+1].key == sec[i].key {
			continue // a later duplicate wins
		}
		out = append(out, sec[i])
	}
	return out
}
