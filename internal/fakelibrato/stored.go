package fakelibrato

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Librato keeps one value per series and second: a legacy gauge is
// identified by its name and source (case-insensitive, as the fake's metric
// types already treat names), a tagged measurement by its name and tag set.
// A later value for the same series and second replaces the earlier one.
// The fake records every arrival (exactly-once assertions count them); the
// functions below give the view a Librato account would show instead.

// SeriesKey identifies the stored value a legacy gauge or counter lands in.
func (g Gauge) SeriesKey() string {
	return strings.ToLower(g.Name) + "\x00" + strings.ToLower(g.Source) + "\x00" + itoa(g.MeasureTime)
}

// SeriesKey identifies the stored value a tagged measurement lands in. Tags
// are already lower-cased by the fake.
func (m Measurement) SeriesKey() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(m.Name))
	for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
		b.WriteString("\x00" + k + "=" + m.Tags[k])
	}
	b.WriteString("\x00" + itoa(m.Time))
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// StoredGauges is what Librato would keep of the accepted legacy gauges:
// one per series and second, the last to arrive, in the order each series
// first arrived.
func (s *Server) StoredGauges() []Gauge {
	return lastPerKey(s.Gauges(), Gauge.SeriesKey)
}

// StoredCounters is StoredGauges for legacy counters.
func (s *Server) StoredCounters() []Gauge {
	return lastPerKey(s.Counters(), Gauge.SeriesKey)
}

// StoredMeasurements is what Librato would keep of the accepted tagged
// measurements: one per name, tag set and second, the last to arrive.
func (s *Server) StoredMeasurements() []Measurement {
	return lastPerKey(s.Measurements(), Measurement.SeriesKey)
}

func lastPerKey[T any](arrived []T, key func(T) string) []T {
	at := make(map[string]int, len(arrived))
	out := make([]T, 0, len(arrived))
	for _, v := range arrived {
		k := key(v)
		if i, ok := at[k]; ok {
			out[i] = v
			continue
		}
		at[k] = len(out)
		out = append(out, v)
	}
	return out
}

// Series follows which series and seconds hold a value, so that a stream of
// arrivals (such as Options.Observe's events) can be told apart into new
// values and values merged into an existing one. It is not safe for
// concurrent use.
type Series struct {
	held map[string]int64 // key -> its second, for Forget
}

// Add records the arrival of a value for key (a SeriesKey) at second t and
// reports whether it merged into a value already held.
func (s *Series) Add(key string, t int64) (merged bool) {
	if s.held == nil {
		s.held = make(map[string]int64)
	}
	_, merged = s.held[key]
	s.held[key] = t
	return merged
}

// Forget drops the series of seconds before t: once the API rejects times
// that old, nothing can merge into them, and a long -serve run should not
// hold every second it ever saw.
func (s *Series) Forget(before int64) {
	maps.DeleteFunc(s.held, func(_ string, t int64) bool { return t < before })
}

// Len is the number of series-seconds held.
func (s *Series) Len() int { return len(s.held) }
