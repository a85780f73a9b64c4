package libratoapi

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const nowUnix = 1_700_000_000

var testNow = time.Unix(nowUnix, 0)

func tags(kv ...string) []Tag {
	var out []Tag
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Tag{kv[i], kv[i+1]})
	}
	return out
}

func manyTags(n int) []Tag {
	out := make([]Tag, n)
	for i := range out {
		out[i] = Tag{"t" + strconv.Itoa(i), "v"}
	}
	return out
}

// TestValidate covers every rule on measurements built by hand, as the
// listener's tests would build them; decode_test.go covers what the
// decoders mark.
func TestValidate(t *testing.T) {
	hour := Window{MaxAge: time.Hour, MaxFuture: 10 * time.Minute}
	tests := []struct {
		name      string
		m         Measurement
		w         Window
		wantField string
		wantMsg   string
	}{
		{name: "plain gauge", m: Measurement{Name: "cpu", Source: "h", Value: 1, HasValue: true}},
		{name: "gauge without value", m: Measurement{Name: "cpu"}, wantField: "value", wantMsg: "is required"},
		{name: "empty name", m: Measurement{Value: 1, HasValue: true}, wantField: "name", wantMsg: "is required"},
		{name: "bad name", m: Measurement{Name: "a b", Value: 1, HasValue: true}, wantField: "name", wantMsg: "a b is not a valid metric name"},
		{name: "source all", m: Measurement{Name: "a", Source: "All", Value: 1, HasValue: true},
			wantField: "source", wantMsg: "All is not a valid source name"},
		{name: "source too long", m: Measurement{Name: "a", Source: strings.Repeat("s", 256), Value: 1, HasValue: true}, wantField: "source"},
		{name: "NaN", m: Measurement{Name: "a", Value: math.NaN(), HasValue: true}, wantField: "value", wantMsg: "is not a number"},
		{name: "+Inf", m: Measurement{Name: "a", Value: math.Inf(1), HasValue: true},
			wantField: "value", wantMsg: "is out of range (base-10 exponent above 126)"},
		{name: "1e127", m: Measurement{Name: "a", Value: -1e127, HasValue: true},
			wantField: "value", wantMsg: "is out of range (base-10 exponent above 126)"},
		{name: "9.99e126 ok", m: Measurement{Name: "a", Value: 9.99e126, HasValue: true}},
		{name: "counter", m: Measurement{Kind: Counter, Name: "c", Value: 0, HasValue: true}},
		{name: "counter negative", m: Measurement{Kind: Counter, Name: "c", Value: -1, HasValue: true}, wantField: "value", wantMsg: "must be positive"},
		{name: "counter without value", m: Measurement{Kind: Counter, Name: "c"}, wantField: "value", wantMsg: "is required"},
		{name: "complex", m: Measurement{Name: "h", Count: 2, HasCount: true, Sum: 3, HasSum: true, SumSquares: 5, HasSumSquares: true}},
		{name: "complex without sum", m: Measurement{Name: "h", Count: 2, HasCount: true}, wantField: "sum", wantMsg: "is required"},
		{name: "complex count 0", m: Measurement{Name: "h", HasCount: true, Sum: 0, HasSum: true}, wantField: "count", wantMsg: "must be positive"},
		{name: "complex with value", m: Measurement{Name: "h", Count: 1, HasCount: true, Sum: 1, HasSum: true, Value: 1, HasValue: true},
			wantField: "value", wantMsg: "must not be present when count is given"},
		{name: "complex min infinite", m: Measurement{Name: "h", Count: 1, HasCount: true, Sum: 1, HasSum: true, Min: math.Inf(-1), HasMin: true},
			wantField: "min"},
		{name: "complex sum_squares NaN", m: Measurement{Name: "h", Count: 1, HasCount: true, Sum: 1, HasSum: true,
			SumSquares: math.NaN(), HasSumSquares: true},
			wantField: "sum_squares"},
		{name: "time in window", m: Measurement{Name: "a", Value: 1, HasValue: true, Time: nowUnix - 3599, HasTime: true}, w: hour},
		{name: "too old", m: Measurement{Name: "a", Value: 1, HasValue: true, Time: nowUnix - 3601, HasTime: true}, w: hour,
			wantField: "measure_time", wantMsg: "is too far in the past"},
		{name: "given zero time too old", m: Measurement{Name: "a", Value: 1, HasValue: true, HasTime: true}, w: hour,
			wantField: "measure_time", wantMsg: msgTooOld},
		{name: "no time no window check", m: Measurement{Name: "a", Value: 1, HasValue: true}, w: hour},
		{name: "too new", m: Measurement{Name: "a", Value: 1, HasValue: true, Time: nowUnix + 601, HasTime: true}, w: hour,
			wantField: "measure_time", wantMsg: "is too far in the future"},
		{name: "window off", m: Measurement{Name: "a", Value: 1, HasValue: true, Time: 1, HasTime: true}},
		{name: "tagged", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("host", "a"), Value: 1, HasValue: true}},
		{name: "tagged no tags", m: Measurement{Kind: Tagged, Name: "m", Value: 1, HasValue: true}, wantField: "tags", wantMsg: "are required"},
		{name: "tagged 50 tags", m: Measurement{Kind: Tagged, Name: "m", Tags: manyTags(50), Value: 1, HasValue: true}},
		{name: "tagged 51 tags", m: Measurement{Kind: Tagged, Name: "m", Tags: manyTags(51), Value: 1, HasValue: true},
			wantField: "tags", wantMsg: "must not have more than 50 tags"},
		{name: "tagged bad key", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("a b", "c"), Value: 1, HasValue: true},
			wantField: "tags", wantMsg: "a b is not a valid tag name"},
		{name: "tagged bad value", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("a", "b|c"), Value: 1, HasValue: true},
			wantField: "tags", wantMsg: "b|c is not a valid tag value"},
		{name: "tagged summary", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("a", "b"), Count: 2, HasCount: true, Sum: 1, HasSum: true,
			Last: 1, HasLast: true, Stddev: 0.5, HasStddev: true}},
		{name: "tagged stddev Inf", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("a", "b"), Count: 2, HasCount: true, Sum: 1, HasSum: true,
			Stddev: math.Inf(1), HasStddev: true}, wantField: "stddev"},
		{name: "tagged too old", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("a", "b"), Value: 1, HasValue: true, Time: 5, HasTime: true}, w: hour,
			wantField: "time", wantMsg: "is too far in the past"},
		{name: "tagged name before tags", m: Measurement{Kind: Tagged, Name: "a b"}, wantField: "name"},
		{name: "legacy source before value", m: Measurement{Name: "a", Source: "all"}, wantField: "source"},
		{name: "tagged value before time", m: Measurement{Kind: Tagged, Name: "m", Tags: tags("a", "b"), Time: 5, HasTime: true}, w: hour,
			wantField: "value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe := Validate(&tt.m, testNow, tt.w)
			switch {
			case tt.wantField == "" && fe != nil:
				t.Fatalf("rejected: %v", fe)
			case tt.wantField == "":
				return
			case fe == nil:
				t.Fatalf("accepted, want %s error", tt.wantField)
			case fe.Field != tt.wantField || (tt.wantMsg != "" && fe.Message != tt.wantMsg):
				t.Fatalf("got %q %q, want %q %q", fe.Field, fe.Message, tt.wantField, tt.wantMsg)
			}
			if fe.TooOld != (tt.wantMsg == msgTooOld) || (fe.TooOld && fe.RequestTime != nowUnix) {
				t.Fatalf("TooOld = %v, RequestTime = %d", fe.TooOld, fe.RequestTime)
			}
		})
	}
}

func TestValidateFlushesTinyValues(t *testing.T) {
	m := Measurement{Kind: Tagged, Name: "m", Tags: tags("a", "b"), Count: 1, HasCount: true,
		Sum: 9e-131, HasSum: true, Min: -1e-300, HasMin: true, Max: 1e-130, HasMax: true}
	if fe := Validate(&m, testNow, Window{}); fe != nil {
		t.Fatal(fe)
	}
	if m.Sum != 0 || m.Min != 0 || m.Max != 1e-130 {
		t.Fatalf("sum %g min %g max %g, want 0 0 1e-130", m.Sum, m.Min, m.Max)
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	ms := []Measurement{
		{Name: "cpu.user", Source: "web-1", Value: 1.5, HasValue: true, Time: nowUnix, HasTime: true},
		{Kind: Counter, Name: "requests", Value: 7, HasValue: true},
		{Name: "latency", Count: 3, HasCount: true, Sum: 6, HasSum: true, Min: 1, HasMin: true, Max: 3, HasMax: true},
		{Kind: Tagged, Name: "cpu", Tags: tags("host", "web-1", "region", "eu"), Value: 2, HasValue: true},
	}
	w := Window{MaxAge: time.Hour}
	allocs := testing.AllocsPerRun(100, func() {
		for i := range ms {
			if Validate(&ms[i], testNow, w) != nil {
				panic("rejected")
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Validate allocates %v times", allocs)
	}
}

// TestErrorShapes pins every answer body byte for byte (after JSON
// normalisation) to the shapes in librato-api.md §1, §2, §4.
func TestErrorShapes(t *testing.T) {
	tooOld := &FieldError{Field: "measure_time", Message: msgTooOld, TooOld: true, RequestTime: nowUnix}
	tests := []struct {
		name       string
		got        *Error
		wantStatus int
		wantBody   string
	}{
		{"legacy field", (&FieldError{Field: "sum", Message: "is required"}).Legacy("h"), 400,
			`{"errors":{"params":{"sum":["is required"],"name":"h"}}}`},
		{"legacy name field omits context", (&FieldError{Field: "name", Message: "a b is not a valid metric name"}).Legacy("a b"), 400,
			`{"errors":{"params":{"name":["a b is not a valid metric name"]}}}`},
		{"legacy no name", (&FieldError{Field: "gauges", Message: MsgNoMeasurements}).Legacy(""), 400,
			`{"errors":{"params":{"gauges":["must have at least one measurement"]}}}`},
		{"legacy too old", tooOld.Legacy("a"), 400,
			`{"errors":{"params":{"measure_time":["is too far in the past"],"name":"a"}},"request_time":1700000000}`},
		{"tagged field", (&FieldError{Field: "tags", Message: "are required"}).Tagged("m"), 400,
			`{"errors":{"params":{"tags":["are required"]},"name":"m"}}`},
		{"tagged no name", (&FieldError{Field: "measurements", Message: MsgNoMeasurements}).Tagged(""), 400,
			`{"errors":{"params":{"measurements":["must have at least one measurement"]}}}`},
		{"tagged too old", (&FieldError{Field: "time", Message: msgTooOld, TooOld: true, RequestTime: 5}).Tagged("m"), 400,
			`{"errors":{"params":{"time":["is too far in the past"]},"name":"m"},"request_time":5}`},
		{"request", RequestError(401, "Credentials are required to access this resource."), 401,
			`{"errors":{"request":["Credentials are required to access this resource."]}}`},
		{"request escapes", RequestError(400, `quote " and <tag>`), 400, `{"errors":{"request":["quote \" and <tag>"]}}`},
		{"legacy parse", LegacyParseError(), 400, `{"errors":{"request":["The JSON could not be parsed"]}}`},
		{"tagged schema", TaggedSchemaError(), 400, `{"code":400,"message":"Unable to process JSON"}`},
		{"credentials", RequestError(401, MsgCredentials), 401,
			`{"errors":{"request":["Credentials are required to access this resource."]}}`},
		{"tagged not enabled", TaggedNotEnabledError(), 403,
			`{"errors":["Tag based measurements are not enabled for this account. Please contact support."]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d", tt.got.Status, tt.wantStatus)
			}
			sameJSON(t, tt.got.Body, tt.wantBody)
		})
	}
}

func TestTaggedSummary(t *testing.T) {
	got := string(TaggedSummary(3, 2, 1, 0))
	want := `{"measurements":{"summary":{"total":3,"accepted":2,"failed":1,"filtered":0}}}`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %q", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %q", want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body = %s, want %s", got, want)
	}
}
