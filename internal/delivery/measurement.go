// Package delivery is the delivery core of outputs.librato: measurements in,
// requests to Librato out, and for each measurement whether it was settled
// (stored, or dropped on proof that Librato refuses it).
package delivery

import "fmt"

// Series is what all measurements of one tag set share: the legacy source,
// or the tagged API's tags already encoded as a JSON object.
type Series struct {
	Source  string
	Tags    string
	Problem string // non-empty: nothing of this series can be sent
	Reason  int    // the converter's drop reason when Problem is set
	// TagSet identifies the metric's raw tag list (a hash of it), the same
	// whichever API the series is converted for: the plugin's ledger keys
	// on it, so a switch of API does not resend what either API stored.
	TagSet uint64

	// Identity hashes what Librato tells series apart by, as Librato
	// compares it (the source case-folded; the tag set lower-cased, in key
	// order), with the process's seed. Set once by the converter, read by
	// the screens that run before delivery; 0 when Problem is set.
	Identity uint64
}

// String describes the series for log lines, in the terms of the API used.
func (s *Series) String() string {
	if s.Tags != "" {
		return "tags " + s.Tags
	}
	return fmt.Sprintf("source %q", s.Source)
}

// Measurement is one Librato measurement: a gauge, or a summary when Summary
// is set. Kept small: a flush handles one per field.
type Measurement struct {
	Name    string
	Series  *Series
	Time    int64
	Value   float64
	Summary *Summary // in the converter's sums

	// NameHash hashes Name case-folded, as Librato compares names, with
	// the seed of Series.Identity. Set by the converter from its name
	// cache, so the screens never hash a name per measurement.
	NameHash uint64
}

// Summary is a complex gauge (legacy) or aggregated measurement (tagged).
type Summary struct {
	Count                          int64
	Sum, Min, Max, SumSquares, Std float64
	HasMin, HasMax, HasSumSq       bool
	HasStd                         bool
}
