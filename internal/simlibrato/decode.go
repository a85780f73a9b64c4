// Package simlibrato is a simulated Librato behind an http.RoundTripper: no
// sockets, no real time. It decodes and judges request bodies with
// internal/libratoapi, Librato's rules shared with the test fake and the
// listener, adds rules of its own that the client does not know (Rules),
// stores the measurements it accepts, answers with faults a Plan chooses,
// and keeps a history of every operation (sent, stored, answered, answer
// read) for a checker to judge after the run. Time is whatever time.Now
// says: run it in a testing/synctest bubble and it is the bubble's fake
// clock.
package simlibrato

import (
	"strings"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

// Measurement is one measurement as Librato reads it from a request: the
// history's summary of a libratoapi.Measurement.
type Measurement struct {
	Name   string
	Source string // legacy API
	// Tags is the tagged API's tag set, lower-cased as Librato stores it,
	// sorted by key and joined as k=v,k=v.
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

// decode reads a request body with libratoapi's decoders. On an error the
// answer is Librato's and no measurement is kept.
func decode(tagged bool, body []byte) ([]libratoapi.Measurement, *libratoapi.Error) {
	var ms []libratoapi.Measurement
	var err *libratoapi.Error
	if tagged {
		ms, err = libratoapi.DecodeTagged(body, nil)
	} else {
		ms, err = libratoapi.DecodeLegacyJSON(body, nil)
	}
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// summarize is the history's copy of decoded measurements.
func summarize(ms []libratoapi.Measurement) []Measurement {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Measurement, len(ms))
	for i := range ms {
		m := &ms[i]
		out[i] = Measurement{Name: m.Name, Source: m.Source, Tags: joinTags(m.Tags), Time: m.Time,
			Value: m.Value, Count: m.Count, Sum: m.Sum}
	}
	return out
}

func joinTags(tags []libratoapi.Tag) string {
	if len(tags) == 0 {
		return ""
	}
	var b strings.Builder
	for i, t := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.Key)
		b.WriteByte('=')
		b.WriteString(t.Value)
	}
	return b.String()
}

// apiMeasurement turns a history Measurement back into what libratoapi
// judges. A history Measurement was decoded or built by hand, so it has a
// value unless it has a count; tags are split back from k=v,k=v (neither
// ',' nor '=' is in a valid tag).
func apiMeasurement(m *Measurement, tagged bool) libratoapi.Measurement {
	am := libratoapi.Measurement{Kind: libratoapi.Gauge, Name: m.Name, Source: m.Source,
		Time: m.Time, HasTime: m.Time != 0, Value: m.Value, HasValue: m.Count == 0,
		Count: m.Count, HasCount: m.Count != 0, Sum: m.Sum, HasSum: m.Count != 0}
	if tagged {
		am.Kind, am.Source = libratoapi.Tagged, ""
		for kv := range strings.SplitSeq(m.Tags, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				am.Tags = append(am.Tags, libratoapi.Tag{Key: k, Value: v})
			}
		}
	}
	return am
}
