package libratoapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*.golden from the decoders")

// decoded is what a golden file records of one decode: Librato's answer
// for the request, else every measurement and Validate's verdict on it.
type decoded struct {
	Error        *answer `json:"error,omitempty"`
	Measurements []mview `json:"measurements,omitempty"`
}

type answer struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// mview is the exported content of a Measurement; a field is shown only
// when present.
type mview struct {
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	Source     string   `json:"source,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Time       *int64   `json:"time,omitempty"`
	Value      *float64 `json:"value,omitempty"`
	Count      *int64   `json:"count,omitempty"`
	Sum        *float64 `json:"sum,omitempty"`
	Min        *float64 `json:"min,omitempty"`
	Max        *float64 `json:"max,omitempty"`
	SumSquares *float64 `json:"sum_squares,omitempty"`
	Last       *float64 `json:"last,omitempty"`
	Stddev     *float64 `json:"stddev,omitempty"`
	// Invalid is Validate's verdict (no window), as "field: message".
	Invalid string `json:"invalid,omitempty"`
}

func opt[T any](v T, has bool) *T {
	if !has {
		return nil
	}
	return &v
}

func viewOf(m Measurement) mview {
	v := mview{
		Kind: m.Kind.String(), Name: m.Name, Source: m.Source,
		Time:  opt(m.Time, m.HasTime),
		Value: opt(m.Value, m.HasValue), Count: opt(m.Count, m.HasCount),
		Sum: opt(m.Sum, m.HasSum), Min: opt(m.Min, m.HasMin), Max: opt(m.Max, m.HasMax),
		SumSquares: opt(m.SumSquares, m.HasSumSquares),
		Last:       opt(m.Last, m.HasLast), Stddev: opt(m.Stddev, m.HasStddev),
	}
	for _, t := range m.Tags {
		v.Tags = append(v.Tags, t.Key+"="+t.Value)
	}
	if fe := Validate(&m, testNow, Window{}); fe != nil {
		v.Invalid = fe.Field + ": " + fe.Message
	}
	return v
}

func decodeView(ms []Measurement, e *Error) decoded {
	if e != nil {
		return decoded{Error: &answer{Status: e.Status, Body: e.Body}}
	}
	var d decoded
	for _, m := range ms {
		d.Measurements = append(d.Measurements, viewOf(m))
	}
	return d
}

// TestGolden decodes every request body under testdata/<api>/ and compares
// the result with the .golden file next to it (go test -update rewrites
// them; review the diff).
func TestGolden(t *testing.T) {
	decoders := map[string]func([]byte, []Measurement) ([]Measurement, *Error){
		"legacy": DecodeLegacyJSON,
		"form":   DecodeLegacyForm,
		"tagged": DecodeTagged,
	}
	for dir, decode := range decoders {
		inputs, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			if strings.HasSuffix(in, ".golden") {
				continue
			}
			t.Run(dir+"/"+filepath.Base(in), func(t *testing.T) {
				body, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := json.MarshalIndent(decodeView(decode(body, nil)), "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, '\n')
				golden := strings.TrimSuffix(in, filepath.Ext(in)) + ".golden"
				if *update {
					if err := os.WriteFile(golden, got, 0o600); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("decoded %s:\n%s\nwant:\n%s", in, got, want)
				}
			})
		}
	}
}

// TestDecodersAppendToDst checks the reuse contract: measurements already
// in dst are kept, and a reused slot carries nothing from its last use.
func TestDecodersAppendToDst(t *testing.T) {
	dst, e := DecodeTagged([]byte(`{"tags":{"a":"b"},"measurements":[{"name":"m","count":2,"sum":1,"min":0,"time":5}]}`), nil)
	if e != nil {
		t.Fatal(string(e.Body))
	}
	first := dst[0]
	dst, e = DecodeLegacyJSON([]byte(`{"gauges":[{"name":"g","value":1}]}`), dst[:1])
	if e != nil || len(dst) != 2 || dst[0].Name != first.Name || dst[0].Count != 2 {
		t.Fatalf("dst = %+v, %v", dst, e)
	}
	if dst, e = DecodeLegacyJSON([]byte(`{"gauges":[{"name":"g","value":1}]}`), dst[:0]); e != nil {
		t.Fatal(string(e.Body))
	}
	if g := dst[0]; g.HasCount || g.HasMin || g.Tags != nil || g.HasTime {
		t.Fatalf("reused slot kept old fields: %+v", g)
	}
}

// TestDecodeErrorsOrder checks that syntax errors win over structure
// errors found earlier, as a parser that reads the whole body first would.
func TestDecodeErrorsOrder(t *testing.T) {
	_, e := DecodeLegacyJSON([]byte(`{"gauges":"x","counters":[`), nil)
	if e == nil || !bytes.Contains(e.Body, []byte(MsgLegacyParse)) {
		t.Fatalf("got %v, want the parse error", e)
	}
	_, e = DecodeTagged([]byte(`{"tags":{"a":"b"},"measurements":[]`), nil)
	if e == nil || string(e.Body) != taggedSchemaBody {
		t.Fatalf("got %v, want the schema error", e)
	}
}
