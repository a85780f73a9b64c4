package libratoapi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets check three things on any input: no panic; an answer
// is a 400 with a JSON body; and a request that decodes and validates
// cleanly, re-encoded from its measurements, decodes to the same
// measurements. The legacy target also checks the scanner against
// encoding/json's notion of valid JSON.

func seedFromTestdata(f *testing.F, dir string) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzDecodeLegacyJSON(f *testing.F) {
	seedFromTestdata(f, "legacy")
	f.Fuzz(func(t *testing.T, body []byte) {
		s := scanner{b: body}
		s.skip(1)
		s.end()
		if valid := !s.failed; valid != json.Valid(body) {
			t.Fatalf("scanner says valid=%v, encoding/json says %v", valid, !valid)
		}
		ms, e := DecodeLegacyJSON(body, nil)
		isObject := json.Valid(body) && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
		if parseErr := e != nil && bytes.Contains(e.Body, []byte(MsgLegacyParse)); parseErr == isObject {
			t.Fatalf("parse error = %v for a body that is a JSON object: %v", parseErr, isObject)
		}
		roundTrip(t, ms, e, encodeLegacyJSON, DecodeLegacyJSON)
	})
}

func FuzzDecodeLegacyForm(f *testing.F) {
	seedFromTestdata(f, "form")
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, e := DecodeLegacyForm(body, nil)
		roundTrip(t, ms, e, encodeLegacyForm, DecodeLegacyForm)
	})
}

func FuzzDecodeTagged(f *testing.F) {
	seedFromTestdata(f, "tagged")
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, e := DecodeTagged(body, nil)
		roundTrip(t, ms, e, encodeTagged, DecodeTagged)
	})
}

type decodeFunc func([]byte, []Measurement) ([]Measurement, *Error)

func roundTrip(t *testing.T, ms []Measurement, e *Error, encode func([]Measurement) []byte, decode decodeFunc) {
	t.Helper()
	if e != nil {
		if e.Status != 400 || !json.Valid(e.Body) {
			t.Fatalf("answer %d %q", e.Status, e.Body)
		}
		return
	}
	if len(ms) == 0 {
		t.Fatal("no error and no measurements")
	}
	for i := range ms {
		if Validate(&ms[i], testNow, Window{}) != nil {
			return // only clean requests have a defined re-encoding
		}
	}
	// Encoders write gauges before counters.
	slices.SortStableFunc(ms, func(a, b Measurement) int { return int(a.Kind) - int(b.Kind) })
	body := encode(ms)
	again, e := decode(body, nil)
	if e != nil {
		t.Fatalf("re-encoded body %s: %s", body, e.Body)
	}
	for i := range again {
		if fe := Validate(&again[i], testNow, Window{}); fe != nil {
			t.Fatalf("re-encoded body %s: %v", body, fe)
		}
	}
	if got, want := exported(again), exported(ms); !reflect.DeepEqual(got, want) {
		t.Fatalf("re-encoded body %s\ndecodes to %+v\nwant %+v", body, got, want)
	}
}

// exported drops the decoder's bookkeeping and treats empty tags as none.
func exported(ms []Measurement) []Measurement {
	out := make([]Measurement, len(ms))
	for i, m := range ms {
		out[i] = Measurement{
			Kind: m.Kind, Name: m.Name, Source: m.Source, Time: m.Time, HasTime: m.HasTime,
			Value: m.Value, HasValue: m.HasValue, Count: m.Count, HasCount: m.HasCount,
			Sum: m.Sum, HasSum: m.HasSum, Min: m.Min, HasMin: m.HasMin, Max: m.Max, HasMax: m.HasMax,
			SumSquares: m.SumSquares, HasSumSquares: m.HasSumSquares,
			Last: m.Last, HasLast: m.HasLast, Stddev: m.Stddev, HasStddev: m.HasStddev,
		}
		if len(m.Tags) > 0 {
			out[i].Tags = m.Tags
		}
	}
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// jsonString quotes s; strconv.Quote's escapes are not all JSON.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil { // a string always marshals
		panic(err)
	}
	return string(b)
}

// fields lists a measurement's present fields as key/value texts.
func fields(m Measurement, timeKey string) [][2]string {
	var out [][2]string
	add := func(has bool, k, v string) {
		if has {
			out = append(out, [2]string{k, v})
		}
	}
	add(m.HasTime, timeKey, strconv.FormatInt(m.Time, 10))
	add(m.HasValue, "value", num(m.Value))
	add(m.HasCount, "count", strconv.FormatInt(m.Count, 10))
	add(m.HasSum, "sum", num(m.Sum))
	add(m.HasMin, "min", num(m.Min))
	add(m.HasMax, "max", num(m.Max))
	add(m.HasSumSquares, "sum_squares", num(m.SumSquares))
	add(m.HasLast, "last", num(m.Last))
	add(m.HasStddev, "stddev", num(m.Stddev))
	return out
}

func encodeLegacyJSON(ms []Measurement) []byte {
	var b strings.Builder
	b.WriteString(`{"gauges":[`)
	sep := ""
	for i, m := range ms {
		if m.Kind == Counter && (i == 0 || ms[i-1].Kind != Counter) {
			b.WriteString(`],"counters":[`)
			sep = ""
		}
		b.WriteString(sep + `{"name":` + jsonString(m.Name))
		if m.Source != "" {
			b.WriteString(`,"source":` + jsonString(m.Source))
		}
		for _, kv := range fields(m, "measure_time") {
			b.WriteString(`,"` + kv[0] + `":` + kv[1])
		}
		b.WriteString("}")
		sep = ","
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func encodeLegacyForm(ms []Measurement) []byte {
	var pairs []string
	for i, m := range ms {
		prefix := "gauges[" + strconv.Itoa(i) + "]"
		if m.Kind == Counter {
			prefix = "counters[" + strconv.Itoa(i) + "]"
		}
		pairs = append(pairs, url.QueryEscape(prefix+"[name]")+"="+url.QueryEscape(m.Name))
		if m.Source != "" {
			pairs = append(pairs, url.QueryEscape(prefix+"[source]")+"="+url.QueryEscape(m.Source))
		}
		for _, kv := range fields(m, "measure_time") {
			pairs = append(pairs, url.QueryEscape(prefix+"["+kv[0]+"]")+"="+url.QueryEscape(kv[1]))
		}
	}
	return []byte(strings.Join(pairs, "&"))
}

func encodeTagged(ms []Measurement) []byte {
	var b strings.Builder
	b.WriteString(`{"measurements":[`)
	for i, m := range ms {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"name":` + jsonString(m.Name) + `,"tags":{`)
		for j, t := range m.Tags {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString(jsonString(t.Key) + ":" + jsonString(t.Value))
		}
		b.WriteString("}")
		for _, kv := range fields(m, "time") {
			b.WriteString(`,"` + kv[0] + `":` + kv[1])
		}
		b.WriteString("}")
	}
	b.WriteString("]}")
	return []byte(b.String())
}
