// Package libratoapi holds Librato's request rules in one place: the
// decoders for what Librato clients send, the name/source/tag/value rules,
// and the error bodies Librato answers with. The test fake
// (internal/fakelibrato) and the librato_listener input both use it, so the
// two can never disagree about what Librato would have accepted.
//
// The reference is the shared API notes (librato-api.md, §1, §2, §4, §7).
package libratoapi

// Kind says which API and type a measurement came from.
type Kind uint8

// The kinds of measurement. Counters exist only in the legacy API; every
// tagged measurement is a gauge-like value of kind Tagged.
const (
	Gauge Kind = iota
	Counter
	Tagged
)

func (k Kind) String() string {
	switch k {
	case Gauge:
		return "gauge"
	case Counter:
		return "counter"
	case Tagged:
		return "tagged"
	default:
		return "unknown"
	}
}

// Tag is one tag of a tagged measurement.
type Tag struct{ Key, Value string }

// Measurement is one decoded legacy gauge or counter, or one tagged
// measurement. Decoders fill it; Validate applies Librato's rules to it.
//
// A Has* flag is set when the field was present and not JSON null, even if
// its value was unusable: Librato decides "value xor count" on presence, so
// Validate must see a present-but-broken field.
type Measurement struct {
	Kind Kind
	Name string
	// Source is the legacy source (own, else the top-level one); "" if none.
	Source string
	// Tags of a tagged measurement: its own tags if given, else the
	// top-level ones (replace, never merge), lower-cased as Librato stores
	// them, sorted by key. Measurements without own tags share one backing
	// array: treat Tags as read-only.
	Tags []Tag
	// Time is Unix seconds (own, else the top-level one); 0 when not given,
	// and the caller uses the receive time. HasTime tells a given 0 apart.
	Time    int64
	HasTime bool

	Value    float64
	HasValue bool

	Count                                   int64
	Sum, Min, Max, SumSquares, Last, Stddev float64
	HasCount, HasSum, HasMin, HasMax        bool
	HasSumSquares, HasLast, HasStddev       bool

	// Set by the decoders, read by Validate, so that problems found while
	// decoding are reported in the order Librato checks fields. Zero for a
	// Measurement built by hand.
	given field // own source/time/tags were given (defaults must not apply)
	bad   field // present but of the wrong JSON type or not an integer
	huge  field // a number whose base-10 exponent is above MaxExponent
	// key is the object key of a legacy entry in the object form, for the
	// deterministic order and the last-key-wins rule of JSON objects.
	key string
}

// field is a bit set naming a measurement's fields.
type field uint16

const (
	fName field = 1 << iota
	fSource
	fTime
	fTags
	fValue
	fCount
	fSum
	fMin
	fMax
	fSumSquares
	fLast
	fStddev
)
