package fakelibrato

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testUser  = "user@example.com"
	testToken = "secret-token"
	nowUnix   = int64(1_700_000_000)
)

func fixedNow() time.Time { return time.Unix(nowUnix, 0) }

// newServer starts a fake with test credentials and a frozen clock unless
// the options say otherwise.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.User == "" && opts.Token == "" {
		opts.User, opts.Token = testUser, testToken
	}
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	s := New(opts)
	t.Cleanup(s.Close)
	return s
}

// call describes one HTTP request against the fake.
type call struct {
	method, path string
	body         []byte
	ctype        string // default application/json for bodies
	encoding     string
	user, pass   string // default test credentials
	noAuth       bool
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (c call) request(t *testing.T, base string) *http.Request {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	} else if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.encoding != "" {
		req.Header.Set("Content-Encoding", c.encoding)
	}
	req.Header.Set("User-Agent", "fakelibrato-test")
	if !c.noAuth {
		user, pass := c.user, c.pass
		if user == "" && pass == "" {
			user, pass = testUser, testToken
		}
		req.SetBasicAuth(user, pass)
	}
	return req
}

func do(t *testing.T, s *Server, c call) answer {
	t.Helper()
	a, err := try(t, s.Client(), s.URL(), c)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	return a
}

func try(t *testing.T, client *http.Client, base string, c call) (answer, error) {
	t.Helper()
	resp, err := client.Do(c.request(t, base))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

func postLegacy(t *testing.T, s *Server, body string) answer {
	t.Helper()
	return do(t, s, call{path: legacyPath, body: []byte(body)})
}

func postTagged(t *testing.T, s *Server, body string) answer {
	t.Helper()
	return do(t, s, call{path: taggedPath, body: []byte(body)})
}

// sameJSON compares JSON documents semantically.
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("answer is not JSON: %q", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %q", want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body = %s, want %s", got, want)
	}
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAuth(t *testing.T) {
	s := newServer(t, Options{})
	const unauthorized = `{"errors":{"request":["Credentials are required to access this resource."]}}`
	tests := []struct {
		name       string
		c          call
		wantStatus int
		wantBody   string
	}{
		{"missing", call{method: "GET", path: legacyPath, noAuth: true}, 401, unauthorized},
		{"wrong user", call{method: "GET", path: legacyPath, user: "x", pass: testToken}, 401, unauthorized},
		{"wrong token", call{method: "GET", path: legacyPath, user: testUser, pass: "nope"}, 401, unauthorized},
		{"before 404", call{method: "GET", path: "/nope", noAuth: true}, 401, unauthorized},
		{"post unauthenticated", call{path: legacyPath, body: []byte(`{"gauges":[{"name":"a","value":1}]}`), noAuth: true}, 401, unauthorized},
		{"probe ok", call{method: "GET", path: legacyPath + "?length=1"}, 200,
			`{"query":{"offset":0,"length":0,"found":0,"total":0},"metrics":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, tt.c)
			if a.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			sameJSON(t, a.body, tt.wantBody)
		})
	}
	if len(s.Gauges()) != 0 {
		t.Fatal("unauthenticated post was stored")
	}
}

func TestRequireHTTPS(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		c          call
		wantStatus int
	}{
		{"plain refused", Options{RequireHTTPS: true}, call{method: "GET", path: legacyPath}, 403},
		{"plain post refused", Options{RequireHTTPS: true}, call{path: legacyPath, body: []byte(`{"gauges":[{"name":"a","value":1}]}`)}, 403},
		{"auth checked first", Options{RequireHTTPS: true}, call{method: "GET", path: legacyPath, noAuth: true}, 401},
		{"tls accepted", Options{RequireHTTPS: true, TLS: true}, call{method: "GET", path: legacyPath}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.opts)
			a := do(t, s, tt.c)
			if a.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			if a.status == 403 {
				sameJSON(t, a.body, `{"errors":{"request":["Please use secured connection through https!"]}}`)
			}
			if len(s.Gauges()) != 0 {
				t.Fatal("refused request was stored")
			}
		})
	}
}

func TestTLS(t *testing.T) {
	s := newServer(t, Options{TLS: true})
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL = %q, want https on 127.0.0.1", s.URL())
	}
	if s.LegacyURL() != s.URL()+"/v1/metrics" || s.TaggedURL() != s.URL()+"/v1/measurements" {
		t.Fatalf("endpoint URLs: %q %q", s.LegacyURL(), s.TaggedURL())
	}
	if a := postLegacy(t, s, `{"gauges":[{"name":"tls","value":1}]}`); a.status != 200 {
		t.Fatalf("status = %d (%s)", a.status, a.body)
	}

	// A client built only from CACertPEM (as tls_ca would be) must work.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatal("CACertPEM is not a usable PEM certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	a, err := try(t, client, s.URL(), call{method: "GET", path: legacyPath})
	if err != nil || a.status != 200 {
		t.Fatalf("custom CA client: %v %d", err, a.status)
	}
	// An untrusting client must fail, proving TLS is really verified.
	if _, err := try(t, &http.Client{}, s.URL(), call{method: "GET", path: legacyPath}); err == nil {
		t.Fatal("default client trusted the self-signed certificate")
	}
}

func TestPlainHTTP(t *testing.T) {
	s := newServer(t, Options{})
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q", s.URL())
	}
	if s.CACertPEM() != nil {
		t.Fatal("CACertPEM must be nil without TLS")
	}
}

func TestLegacyRules(t *testing.T) {
	name255 := strings.Repeat("n", 255)
	src255 := strings.Repeat("s", 255)
	tooOld := nowUnix - 7200
	recent := nowUnix - 60
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string  // exact JSON when set
		wantErr    string  // substring when set
		want       []Gauge // stored gauges on success when set
	}{
		{name: "plain gauge", body: `{"gauges":[{"name":"cpu","value":1.5,"source":"h1","measure_time":1699999980}]}`,
			wantStatus: 200, wantBody: `{}`,
			want: []Gauge{{Name: "cpu", Source: "h1", Value: 1.5, MeasureTime: 1699999980}}},
		{name: "top-level source and time inherited", body: fmt.Sprintf(`{"source":"top","measure_time":%d,"gauges":[{"name":"a","value":1},{"name":"b","value":2,"source":"own","measure_time":%d}]}`, recent, recent-60),
			wantStatus: 200, want: []Gauge{{Name: "a", Source: "top", Value: 1, MeasureTime: recent}, {Name: "b", Source: "own", Value: 2, MeasureTime: recent - 60}}},
		{name: "no source no time", body: `{"gauges":[{"name":"a","value":-3}]}`,
			wantStatus: 200, want: []Gauge{{Name: "a", Value: -3}}},
		{name: "name 255 ok", body: `{"gauges":[{"name":"` + name255 + `","value":1}]}`,
			wantStatus: 200, want: []Gauge{{Name: name255, Value: 1}}},
		{name: "name 256 rejected", body: `{"gauges":[{"name":"` + name255 + `n","value":1}]}`, wantStatus: 400, wantErr: `"name":[`},
		{name: "name with space", body: `{"gauges":[{"name":"a b","value":1}]}`, wantStatus: 400, wantErr: `a b is not a valid metric name`},
		{name: "name with slash", body: `{"gauges":[{"name":"a/b","value":1}]}`, wantStatus: 400, wantErr: `"name":[`},
		{name: "name colon ok", body: `{"gauges":[{"name":"a:b-c_d.e","value":1}]}`, wantStatus: 200},
		{name: "name missing", body: `{"gauges":[{"value":1}]}`, wantStatus: 400, wantBody: `{"errors":{"params":{"name":["is required"]}}}`},
		{name: "source all", body: `{"gauges":[{"name":"a","value":1,"source":"all"}]}`,
			wantStatus: 400, wantBody: `{"errors":{"params":{"source":["all is not a valid source name"],"name":"a"}}}`},
		{name: "source ALL", body: `{"gauges":[{"name":"a","value":1,"source":"ALL"}]}`, wantStatus: 400, wantErr: `ALL is not a valid source name`},
		{name: "source 255 ok", body: `{"gauges":[{"name":"a","value":1,"source":"` + src255 + `"}]}`, wantStatus: 200},
		{name: "source 256 rejected", body: `{"gauges":[{"name":"a","value":1,"source":"` + src255 + `s"}]}`, wantStatus: 400, wantErr: `is not a valid source name`},
		{name: "top source invalid", body: `{"source":"a b","gauges":[{"name":"a","value":1}]}`, wantStatus: 400, wantErr: `a b is not a valid source name`},
		{name: "string value", body: `{"gauges":[{"name":"a","value":"1"}]}`,
			wantStatus: 400, wantBody: `{"errors":{"params":{"value":["is not a number"],"name":"a"}}}`},
		{name: "bool value", body: `{"gauges":[{"name":"a","value":true}]}`, wantStatus: 400, wantErr: `"value":["is not a number"]`},
		{name: "null value", body: `{"gauges":[{"name":"a","value":null}]}`, wantStatus: 400, wantErr: `"value":["is required"]`},
		{name: "exponent 126", body: `{"gauges":[{"name":"a","value":9.99e126}]}`, wantStatus: 200, want: []Gauge{{Name: "a", Value: 9.99e126}}},
		{name: "exponent 126 spelled out", body: `{"gauges":[{"name":"a","value":1` + strings.Repeat("0", 126) + `}]}`, wantStatus: 200},
		{name: "exponent 127", body: `{"gauges":[{"name":"a","value":1e127}]}`, wantStatus: 400, wantErr: `"value":[`},
		{name: "exponent 127 via mantissa", body: `{"gauges":[{"name":"a","value":10.0e126}]}`, wantStatus: 400, wantErr: `"value":[`},
		{name: "max float", body: `{"gauges":[{"name":"a","value":1.7976931348623157e308}]}`, wantStatus: 400},
		{name: "beyond float", body: `{"gauges":[{"name":"a","value":1e99999999999999999999}]}`, wantStatus: 400},
		{name: "exponent 200 in sum", body: `{"gauges":[{"name":"a","count":1,"sum":-1e200}]}`, wantStatus: 400, wantErr: `"sum":[`},
		{name: "tiny stored as zero", body: `{"gauges":[{"name":"a","value":9e-131},{"name":"b","value":1e-130},{"name":"c","value":-1e-400}]}`,
			wantStatus: 200, want: []Gauge{{Name: "a"}, {Name: "b", Value: 1e-130}, {Name: "c"}}},
		{name: "measure_time fraction", body: `{"gauges":[{"name":"a","value":1,"measure_time":1699999999.5}]}`,
			wantStatus: 400, wantErr: `"measure_time":["is not an integer"]`},
		{name: "measure_time exponent form", body: `{"gauges":[{"name":"a","value":1,"measure_time":1.7e9}]}`, wantStatus: 400, wantErr: `measure_time`},
		{name: "measure_time string", body: `{"gauges":[{"name":"a","value":1,"measure_time":"1699999999"}]}`, wantStatus: 400, wantErr: `measure_time`},
		{name: "measure_time too old", body: fmt.Sprintf(`{"gauges":[{"name":"a","value":1,"measure_time":%d}]}`, tooOld),
			wantStatus: 400, wantBody: fmt.Sprintf(`{"errors":{"params":{"measure_time":["is too far in the past"],"name":"a"}},"request_time":%d}`, nowUnix)},
		{name: "top measure_time too old", body: fmt.Sprintf(`{"measure_time":%d,"gauges":[{"name":"a","value":1}]}`, tooOld), wantStatus: 400, wantErr: `too far in the past`},
		{name: "complex gauge", body: `{"gauges":[{"name":"h","count":3,"sum":6,"min":1,"max":3,"sum_squares":14}]}`,
			wantStatus: 200, want: []Gauge{{Name: "h", Count: 3, Sum: 6, Min: 1, Max: 3, SumSquares: 14, HasMin: true, HasMax: true, HasSumSquares: true}}},
		{name: "complex sum missing", body: `{"gauges":[{"name":"h","count":3}]}`,
			wantStatus: 400, wantBody: `{"errors":{"params":{"sum":["is required"],"name":"h"}}}`},
		{name: "complex count 0", body: `{"gauges":[{"name":"h","count":0,"sum":0}]}`,
			wantStatus: 400, wantBody: `{"errors":{"params":{"count":["must be positive"],"name":"h"}}}`},
		{name: "complex with value", body: `{"gauges":[{"name":"h","count":1,"sum":1,"value":1}]}`, wantStatus: 400, wantErr: `"value":[`},
		{name: "complex fractional count", body: `{"gauges":[{"name":"h","count":1.5,"sum":1}]}`, wantStatus: 400, wantErr: `"count":[`},
		{name: "unknown entry keys ignored", body: `{"period":60,"gauges":[{"name":"a","value":1,"period":60,"attributes":{"x":1},"whatever":[1]}]}`, wantStatus: 200},
		{name: "gauges as object", body: `{"gauges":{"b":{"value":2},"a":{"value":1,"source":"s"},"key":{"name":"inner","value":3}}}`,
			wantStatus: 200, want: []Gauge{{Name: "a", Source: "s", Value: 1}, {Name: "b", Value: 2}, {Name: "inner", Value: 3}}},
		{name: "gauges invalid type", body: `{"gauges":"cpu"}`, wantStatus: 400, wantErr: `"gauges":[`},
		{name: "gauge entry not object", body: `{"gauges":[1]}`, wantStatus: 400, wantErr: `"gauges":[`},
		{name: "empty payload", body: `{}`, wantStatus: 400, wantBody: `{"errors":{"params":{"gauges":["must have at least one measurement"]}}}`},
		{name: "empty arrays", body: `{"gauges":[],"counters":[]}`, wantStatus: 400, wantErr: `must have at least one measurement`},
		{name: "unparseable", body: `{"gauges":[`, wantStatus: 400, wantBody: `{"errors":{"request":["The JSON could not be parsed"]}}`},
		{name: "not an object", body: `[{"name":"a","value":1}]`, wantStatus: 400, wantErr: `could not be parsed`},
		{name: "trailing garbage", body: `{"gauges":[{"name":"a","value":1}]} x`, wantStatus: 400, wantErr: `could not be parsed`},
		{name: "empty body", body: ``, wantStatus: 400, wantErr: `could not be parsed`},
		{name: "counter ok", body: `{"counters":[{"name":"c","value":0}]}`, wantStatus: 200},
		{name: "counter negative", body: `{"counters":[{"name":"c","value":-1}]}`, wantStatus: 400, wantBody: `{"errors":{"params":{"value":["must be positive"],"name":"c"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{MaxPast: time.Hour})
			a := postLegacy(t, s, tt.body)
			if a.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			if tt.wantBody != "" {
				sameJSON(t, a.body, tt.wantBody)
			}
			if !strings.Contains(a.body, tt.wantErr) {
				t.Fatalf("body %s does not contain %s", a.body, tt.wantErr)
			}
			got := s.Gauges()
			if a.status != 200 && len(got) != 0 {
				t.Fatalf("rejected request stored %v", got)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("stored %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLegacyWholeRequestRejected(t *testing.T) {
	s := newServer(t, Options{})
	a := postLegacy(t, s, `{"gauges":[{"name":"ok1","value":1},{"name":"ok2","value":2},{"name":"bad name","value":3}],"counters":[{"name":"c","value":1}]}`)
	if a.status != 400 {
		t.Fatalf("status = %d", a.status)
	}
	if g, c := s.Gauges(), s.Counters(); len(g) != 0 || len(c) != 0 {
		t.Fatalf("stored %v %v from a rejected request", g, c)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Status != 400 || !strings.Contains(string(reqs[0].Response), "bad name") {
		t.Fatalf("request log = %+v", reqs)
	}
}

func TestLegacyTypeConflict(t *testing.T) {
	tests := []struct {
		name    string
		first   string // accepted before, if set
		second  string
		wantMsg string
	}{
		{"counter then gauge", `{"counters":[{"name":"x","value":1}]}`, `{"gauges":[{"name":"x","value":1}]}`,
			`'x' is a counter, but was submitted as different type`},
		{"gauge then counter", `{"gauges":[{"name":"x","value":1}]}`, `{"counters":[{"name":"X","value":1}]}`,
			`'X' is a gauge, but was submitted as different type`},
		{"same request", "", `{"gauges":[{"name":"y","value":1}],"counters":[{"name":"y","value":1}]}`,
			`'y' is a gauge, but was submitted as different type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{})
			if tt.first != "" {
				if a := postLegacy(t, s, tt.first); a.status != 200 {
					t.Fatalf("first post: %d %s", a.status, a.body)
				}
			}
			before := len(s.Gauges()) + len(s.Counters())
			a := postLegacy(t, s, tt.second)
			if a.status != 400 || !strings.Contains(a.body, `"type":["`+tt.wantMsg+`"]`) {
				t.Fatalf("got %d %s, want 400 with %q", a.status, a.body, tt.wantMsg)
			}
			if after := len(s.Gauges()) + len(s.Counters()); after != before {
				t.Fatalf("conflicting request stored data: %d -> %d", before, after)
			}
		})
	}
}

func TestContentTypeAndEncoding(t *testing.T) {
	const payload = `{"gauges":[{"name":"z","value":1}]}`
	big := `{"gauges":[{"name":"z","value":1,"pad":"` + strings.Repeat("x", 3000) + `"}]}`
	tests := []struct {
		name       string
		allowGzip  bool
		c          call
		wantStatus int
		wantBody   string
	}{
		{"json with charset", false, call{path: legacyPath, body: []byte(payload), ctype: "application/json; charset=utf-8"}, 200, `{}`},
		{"text/plain", false, call{path: legacyPath, body: []byte(payload), ctype: "text/plain"}, 415, ""},
		{"form", false, call{path: legacyPath, body: []byte("gauges[0][name]=z&gauges[0][value]=1"), ctype: "application/x-www-form-urlencoded"}, 415, ""},
		{"garbage content type", false, call{path: taggedPath, body: []byte(payload), ctype: ";;;"}, 415, ""},
		{"gzip refused", false, call{path: legacyPath, body: gzipped(t, payload), encoding: "gzip"}, 415,
			`{"errors":{"request":["Content-Encoding not supported"]}}`},
		{"gzip accepted", true, call{path: legacyPath, body: gzipped(t, payload), encoding: "gzip"}, 200, `{}`},
		{"gzip tagged", true, call{path: taggedPath, body: gzipped(t, `{"tags":{"a":"b"},"measurements":[{"name":"z","value":1}]}`), encoding: "gzip"}, 202, `{}`},
		{"bad gzip", true, call{path: legacyPath, body: []byte(payload), encoding: "gzip"}, 400, ""},
		{"truncated gzip", true, call{path: legacyPath, body: gzipped(t, payload)[:20], encoding: "gzip"}, 400, ""},
		{"gzip bomb over limit", true, call{path: legacyPath, body: gzipped(t, big), encoding: "gzip"}, 413, ""},
		{"deflate", true, call{path: legacyPath, body: []byte(payload), encoding: "deflate"}, 415, ""},
		{"identity", false, call{path: legacyPath, body: []byte(payload), encoding: "identity"}, 200, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{AllowGzip: tt.allowGzip, MaxBodyBytes: 2048})
			a := do(t, s, tt.c)
			if a.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			if tt.wantBody != "" {
				sameJSON(t, a.body, tt.wantBody)
			}
			stored := len(s.Gauges()) + len(s.Measurements())
			if (a.status < 300) != (stored == 1) {
				t.Fatalf("status %d but %d stored", a.status, stored)
			}
		})
	}
}

func TestGzipBodyIsLoggedDecoded(t *testing.T) {
	s := newServer(t, Options{AllowGzip: true})
	const payload = `{"gauges":[{"name":"z","value":1}]}`
	do(t, s, call{path: legacyPath, body: gzipped(t, payload), encoding: "gzip"})
	if reqs := s.Requests(); len(reqs) != 1 || string(reqs[0].Body) != payload {
		t.Fatalf("request log = %+v", reqs)
	}
}

// chunkedReader hides the length so the client sends a chunked body and the
// server cannot reject it from Content-Length alone.
type chunkedReader struct{ io.Reader }

func TestBodyTooLarge(t *testing.T) {
	s := newServer(t, Options{MaxBodyBytes: 1024})
	body := `{"gauges":[{"name":"a","value":1,"pad":"` + strings.Repeat("x", 2000) + `"}]}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			req := call{path: legacyPath, body: []byte(body)}.request(t, s.URL())
			if chunked {
				req.Body = io.NopCloser(chunkedReader{strings.NewReader(body)})
				req.ContentLength = -1
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 413 {
				t.Fatalf("status = %d (%s)", resp.StatusCode, b)
			}
			sameJSON(t, string(b), `{"errors":{"request":["request body too large"]}}`)
		})
	}
	if len(s.Gauges()) != 0 {
		t.Fatal("oversized body stored")
	}
	// Exactly at the limit is fine.
	ok := `{"gauges":[{"name":"a","value":1}]}`
	ok += strings.Repeat(" ", 1024-len(ok))
	if a := postLegacy(t, s, ok); a.status != 200 {
		t.Fatalf("body of exactly MaxBodyBytes: %d %s", a.status, a.body)
	}
}

func TestTaggedRules(t *testing.T) {
	tags50 := make(map[string]string, 51)
	for i := range 50 {
		tags50[fmt.Sprintf("t%d", i)] = "v"
	}
	json50, _ := json.Marshal(tags50)
	tags50["t50"] = "v"
	json51, _ := json.Marshal(tags50)
	const schemaErr = `{"code":400,"message":"Unable to process JSON"}`
	recent := nowUnix - 60

	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string
		wantErr    string
		want       []Measurement
	}{
		{name: "ok", body: fmt.Sprintf(`{"tags":{"Host":"Web-1"},"time":%d,"period":60,"measurements":[{"name":"cpu","value":2.5}]}`, recent),
			wantStatus: 202, wantBody: `{}`,
			want: []Measurement{{Name: "cpu", Tags: map[string]string{"host": "web-1"}, Value: 2.5, Time: recent}}},
		{name: "tags replace not merge", body: `{"tags":{"host":"a","region":"eu"},"measurements":[{"name":"m1","value":1,"tags":{"az":"x"}},{"name":"m2","value":2}]}`,
			wantStatus: 202, want: []Measurement{
				{Name: "m1", Tags: map[string]string{"az": "x"}, Value: 1, Time: nowUnix},
				{Name: "m2", Tags: map[string]string{"host": "a", "region": "eu"}, Value: 2, Time: nowUnix}}},
		{name: "summary", body: fmt.Sprintf(`{"tags":{"a":"b"},"measurements":[{"name":"s","count":2,"sum":3,"min":1,"max":2,"last":2,"stddev":0.5,"time":%d,"attributes":{"aggregate":true}}]}`, recent),
			wantStatus: 202, want: []Measurement{{Name: "s", Tags: map[string]string{"a": "b"}, Count: 2, Sum: 3, Min: 1, Max: 2, Last: 2, StdDev: 0.5,
				HasMin: true, HasMax: true, HasLast: true, HasStdDev: true, Time: recent}}},
		{name: "tag value charset", body: `{"tags":{"path":"/a/b? c\\d:e-f.g_h"},"measurements":[{"name":"m","value":1}]}`,
			wantStatus: 202, want: []Measurement{{Name: "m", Tags: map[string]string{"path": `/a/b? c\d:e-f.g_h`}, Value: 1, Time: nowUnix}}},
		{name: "50 tags", body: `{"tags":` + string(json50) + `,"measurements":[{"name":"m","value":1}]}`, wantStatus: 202},
		{name: "51 tags", body: `{"tags":` + string(json51) + `,"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `"tags":[`},
		{name: "own tags empty replace top", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","value":1,"tags":{}}]}`,
			wantStatus: 400, wantBody: `{"errors":{"params":{"tags":["are required"]},"name":"m"}}`},
		{name: "no tags", body: `{"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `"tags":[`},
		{name: "bad tag value", body: `{"tags":{"a":"b|c"},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `b|c is not a valid tag value`},
		{name: "non-ascii tag value", body: `{"tags":{"a":"caf\u00e9"},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `not a valid tag value`},
		{name: "empty tag value", body: `{"tags":{"a":""},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `not a valid tag value`},
		{name: "tag value 256", body: `{"tags":{"a":"` + strings.Repeat("v", 256) + `"},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `not a valid tag value`},
		{name: "bad tag name", body: `{"tags":{"a b":"c"},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `a b is not a valid tag name`},
		{name: "tag name 65", body: `{"tags":{"` + strings.Repeat("k", 65) + `":"c"},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantErr: `not a valid tag name`},
		{name: "bad metric name", body: `{"tags":{"a":"b"},"measurements":[{"name":"a b","value":1}]}`, wantStatus: 400, wantErr: `"name":[`},
		{name: "source key", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","value":1,"source":"h"}]}`, wantStatus: 400, wantBody: schemaErr},
		{name: "measure_time key", body: `{"tags":{"a":"b"},"measure_time":1,"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantBody: schemaErr},
		{name: "case-sensitive keys", body: `{"tags":{"a":"b"},"measurements":[{"Name":"m","value":1}]}`, wantStatus: 400, wantBody: schemaErr},
		{name: "string value", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","value":"1"}]}`, wantStatus: 400, wantBody: schemaErr},
		{name: "numeric tag value", body: `{"tags":{"a":1},"measurements":[{"name":"m","value":1}]}`, wantStatus: 400, wantBody: schemaErr},
		{name: "unparseable", body: `{"measurements":`, wantStatus: 400, wantBody: schemaErr},
		{name: "measurements not array", body: `{"tags":{"a":"b"},"measurements":{}}`, wantStatus: 400, wantBody: schemaErr},
		{name: "empty measurements", body: `{"tags":{"a":"b"},"measurements":[]}`, wantStatus: 400, wantErr: `"measurements":[`},
		{name: "value and count", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","value":1,"count":1,"sum":1}]}`, wantStatus: 400, wantErr: `"value":[`},
		{name: "neither value nor count", body: `{"tags":{"a":"b"},"measurements":[{"name":"m"}]}`, wantStatus: 400, wantErr: `"value":[`},
		{name: "count without sum", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","count":1}]}`, wantStatus: 400, wantErr: `"sum":["is required"]`},
		{name: "count 0", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","count":0,"sum":0}]}`, wantStatus: 400, wantErr: `"count":["must be positive"]`},
		{name: "exponent 127", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","value":1e127}]}`, wantStatus: 400, wantErr: `"value":[`},
		{name: "time fraction", body: `{"tags":{"a":"b"},"measurements":[{"name":"m","value":1,"time":1699999999.5}]}`, wantStatus: 400, wantErr: `"time":["is not an integer"]`},
		{name: "time too old", body: fmt.Sprintf(`{"tags":{"a":"b"},"time":%d,"measurements":[{"name":"m","value":1}]}`, nowUnix-7200), wantStatus: 400, wantErr: `too far in the past`},
		{name: "second entry invalid rejects all", body: `{"tags":{"a":"b"},"measurements":[{"name":"ok","value":1},{"name":"bad","value":1,"tags":{"x":"|"}}]}`,
			wantStatus: 400, wantErr: `"name":"bad"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{MaxPast: time.Hour})
			a := postTagged(t, s, tt.body)
			if a.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			if tt.wantBody != "" {
				sameJSON(t, a.body, tt.wantBody)
			}
			if !strings.Contains(a.body, tt.wantErr) {
				t.Fatalf("body %s does not contain %s", a.body, tt.wantErr)
			}
			got := s.Measurements()
			if a.status != 202 && len(got) != 0 {
				t.Fatalf("rejected request stored %v", got)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("stored %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestTaggedDisabled(t *testing.T) {
	s := newServer(t, Options{TaggedDisabled: true})
	a := postTagged(t, s, `{"tags":{"a":"b"},"measurements":[{"name":"m","value":1}]}`)
	if a.status != 403 {
		t.Fatalf("status = %d", a.status)
	}
	sameJSON(t, a.body, `{"errors":["Tag based measurements are not enabled for this account. Please contact support."]}`)
	if len(s.Measurements()) != 0 {
		t.Fatal("stored while disabled")
	}
}

func TestNotFound(t *testing.T) {
	s := newServer(t, Options{})
	for _, c := range []call{
		{method: "GET", path: taggedPath},
		{method: "PUT", path: legacyPath, body: []byte(`{}`)},
		{method: "DELETE", path: legacyPath},
		{method: "POST", path: "/v1/metrics/", body: []byte(`{}`)},
		{method: "GET", path: "/"},
	} {
		a := do(t, s, c)
		if a.status != 404 {
			t.Fatalf("%s %s: status = %d", c.method, c.path, a.status)
		}
		sameJSON(t, a.body, `{"errors":{"request":["not found"]}}`)
	}
}

func TestRequestLog(t *testing.T) {
	s := newServer(t, Options{})
	const payload = `{"gauges":[{"name":"a","value":1}]}`
	postLegacy(t, s, payload)
	do(t, s, call{method: "GET", path: legacyPath, noAuth: true})
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("logged %d requests", len(reqs))
	}
	first, second := reqs[0], reqs[1]
	if first.N != 1 || first.Method != "POST" || first.Path != legacyPath || first.Status != 200 ||
		string(first.Body) != payload || string(first.Response) != "{}" ||
		first.Header.Get("Content-Type") != "application/json" ||
		first.Header.Get("User-Agent") != "fakelibrato-test" || first.Header.Get("Authorization") == "" {
		t.Fatalf("first = %+v", first)
	}
	if second.N != 2 || second.Status != 401 || second.Header.Get("Authorization") != "" {
		t.Fatalf("second = %+v", second)
	}
	// The log is a copy: mutating it must not affect the server.
	reqs[0].Body[0] = 'X'
	if s.Requests()[0].Body[0] != '{' {
		t.Fatal("Requests() exposes internal buffers")
	}
}

func TestFaultStatus(t *testing.T) {
	var mu sync.Mutex
	var seen []*Received
	s := newServer(t, Options{Fault: func(n int, r *Received) Action {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		if n == 1 {
			return Action{Status: 503, Header: http.Header{"X-Fault": {"yes"}}, Body: []byte(`{"errors":{"system":["down"]}}`)}
		}
		return Action{}
	}})
	const payload = `{"source":"h","gauges":[{"name":"a","value":1,"measure_time":1699999980}]}`
	a := postLegacy(t, s, payload)
	if a.status != 503 || a.header.Get("X-Fault") != "yes" || a.body != `{"errors":{"system":["down"]}}` {
		t.Fatalf("fault answer = %+v", a)
	}
	if len(s.Gauges()) != 0 {
		t.Fatal("faulted request was stored")
	}
	if a := postLegacy(t, s, payload); a.status != 200 {
		t.Fatalf("second attempt: %d", a.status)
	}
	if n := s.CountGauge("a", "h", 1699999980); n != 1 {
		t.Fatalf("CountGauge = %d, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []Gauge{{Name: "a", Source: "h", Value: 1, MeasureTime: 1699999980}}
	if len(seen) != 2 || seen[0].N != 1 || seen[1].N != 2 || seen[0].Path != legacyPath ||
		string(seen[0].Body) != payload || !reflect.DeepEqual(seen[0].Gauges, want) {
		t.Fatalf("hook saw %+v", seen)
	}
}

func TestFaultSeesTaggedAndInvalid(t *testing.T) {
	got := make(chan *Received, 2)
	s := newServer(t, Options{Fault: func(_ int, r *Received) Action { got <- r; return Action{} }})
	postTagged(t, s, `{"tags":{"Top":"T"},"measurements":[{"name":"m","value":1},{"name":"n","value":2,"tags":{"Own":"O"}}]}`)
	r := <-got
	want := []Measurement{
		{Name: "m", Tags: map[string]string{"top": "t"}, Value: 1, Time: nowUnix},
		{Name: "n", Tags: map[string]string{"own": "o"}, Value: 2, Time: nowUnix},
	}
	if !reflect.DeepEqual(r.Measurements, want) {
		t.Fatalf("hook saw %+v", r.Measurements)
	}
	// Invalid requests still reach the hook (before validation).
	if a := postLegacy(t, s, `{"gauges":[{"name":"bad name","value":1}]}`); a.status != 400 {
		t.Fatalf("status = %d", a.status)
	}
	if r := <-got; len(r.Gauges) != 1 || r.Gauges[0].Name != "bad name" {
		t.Fatalf("hook saw %+v", r.Gauges)
	}
}

func TestFaultReset(t *testing.T) {
	s := newServer(t, Options{Fault: func(int, *Received) Action { return Action{Reset: true} }})
	for _, tlsMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsMode), func(t *testing.T) {
			s := s
			if tlsMode {
				s = newServer(t, Options{TLS: true, Fault: func(int, *Received) Action { return Action{Reset: true} }})
			}
			_, err := try(t, s.Client(), s.URL(), call{path: legacyPath, body: []byte(`{"gauges":[{"name":"a","value":1}]}`)})
			if err == nil {
				t.Fatal("client got an answer despite Reset")
			}
			if len(s.Gauges()) != 0 {
				t.Fatal("reset request was stored")
			}
			if reqs := s.Requests(); len(reqs) != 1 || reqs[0].Status != 0 {
				t.Fatalf("request log = %+v", reqs)
			}
		})
	}
}

func TestFaultHang(t *testing.T) {
	s := newServer(t, Options{Fault: func(int, *Received) Action { return Action{Hang: true} }})
	client := s.Client()
	client.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := try(t, client, s.URL(), call{path: legacyPath, body: []byte(`{"gauges":[{"name":"a","value":1}]}`)})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("answered after %v", d)
	}
	if len(s.Gauges()) != 0 {
		t.Fatal("hung request was stored")
	}
}

func TestCloseReleasesHang(t *testing.T) {
	s := New(Options{User: testUser, Token: testToken, Fault: func(int, *Received) Action { return Action{Hang: true} }})
	errc := make(chan error, 1)
	go func() {
		_, err := try(t, s.Client(), s.URL(), call{path: legacyPath, body: []byte(`{"gauges":[{"name":"a","value":1}]}`)})
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	if err := <-errc; err == nil {
		t.Fatal("hanging request got an answer after Close")
	}
	s.Close() // idempotent
}

func TestLatency(t *testing.T) {
	s := newServer(t, Options{Latency: 150 * time.Millisecond})
	start := time.Now()
	if a := do(t, s, call{method: "GET", path: legacyPath}); a.status != 200 {
		t.Fatalf("status = %d", a.status)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered after %v, want >= 150ms", d)
	}
	client := s.Client()
	client.Timeout = 30 * time.Millisecond
	if _, err := try(t, client, s.URL(), call{path: legacyPath, body: []byte(`{"gauges":[{"name":"a","value":1}]}`)}); err == nil {
		t.Fatal("impatient client got an answer")
	}
	// Give the aborted handler a moment; it must not store anything.
	time.Sleep(200 * time.Millisecond)
	if len(s.Gauges()) != 0 {
		t.Fatal("abandoned request was stored")
	}
}

func TestRateLimit(t *testing.T) {
	s := newServer(t, Options{RateLimit: 2, RateLimitWindow: time.Second})
	const payload = `{"gauges":[{"name":"a","value":1}]}`
	tests := []struct {
		wantStatus int
		wantRate   string
	}{
		{200, "limit=2,remaining=1,reset=1"},
		{200, "limit=2,remaining=0,reset=1"},
		{429, "limit=2,remaining=0,reset=1"},
		{429, "limit=2,remaining=0,reset=1"},
	}
	for i, tt := range tests {
		a := postLegacy(t, s, payload)
		if a.status != tt.wantStatus || a.header.Get(rateLimitHeader) != tt.wantRate {
			t.Fatalf("request %d: %d %q, want %d %q", i+1, a.status, a.header.Get(rateLimitHeader), tt.wantStatus, tt.wantRate)
		}
		if a.status == 429 {
			if a.header.Get("Retry-After") != "1" {
				t.Fatalf("Retry-After = %q", a.header.Get("Retry-After"))
			}
			sameJSON(t, a.body, fmt.Sprintf(`{"request_time":%d,"error":"You have hit the API limit for measurements [measure:raw_rate]. Contact: support@librato.com to adjust this limit."}`, nowUnix))
		}
	}
	if n := len(s.Gauges()); n != 2 {
		t.Fatalf("stored %d gauges, want 2", n)
	}
}

func TestRateLimitWindowAndRetryAfter(t *testing.T) {
	s := newServer(t, Options{RateLimit: 1, RateLimitWindow: 2500 * time.Millisecond})
	if a := do(t, s, call{method: "GET", path: legacyPath}); a.status != 200 {
		t.Fatalf("status = %d", a.status)
	}
	a := do(t, s, call{method: "GET", path: legacyPath})
	if a.status != 429 || a.header.Get("Retry-After") != "3" {
		t.Fatalf("got %d Retry-After %q, want 429 and 3 (rounded up)", a.status, a.header.Get("Retry-After"))
	}

	short := newServer(t, Options{RateLimit: 1, RateLimitWindow: 100 * time.Millisecond})
	do(t, short, call{method: "GET", path: legacyPath})
	if a := do(t, short, call{method: "GET", path: legacyPath}); a.status != 429 {
		t.Fatalf("status = %d, want 429", a.status)
	}
	time.Sleep(150 * time.Millisecond)
	if a := do(t, short, call{method: "GET", path: legacyPath}); a.status != 200 {
		t.Fatalf("after the window: %d, want 200", a.status)
	}
}

func TestCountGaugeAndReset(t *testing.T) {
	var ns []int
	var mu sync.Mutex
	s := newServer(t, Options{Fault: func(n int, _ *Received) Action {
		mu.Lock()
		ns = append(ns, n)
		mu.Unlock()
		return Action{}
	}})
	post := func(body string) {
		t.Helper()
		if a := postLegacy(t, s, body); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	post(`{"gauges":[{"name":"a","source":"h","value":1,"measure_time":100}]}`)
	post(`{"gauges":[{"name":"a","source":"h","value":1,"measure_time":100},{"name":"a","source":"h","value":1,"measure_time":160}]}`)
	tests := []struct {
		name, source string
		at           int64
		want         int
	}{
		{"a", "h", 100, 2},
		{"a", "h", 160, 1},
		{"a", "other", 100, 0},
		{"A", "h", 100, 0},
		{"a", "h", 0, 0},
	}
	for _, tt := range tests {
		if got := s.CountGauge(tt.name, tt.source, tt.at); got != tt.want {
			t.Fatalf("CountGauge(%q,%q,%d) = %d, want %d", tt.name, tt.source, tt.at, got, tt.want)
		}
	}
	s.Reset()
	if len(s.Gauges()) != 0 || len(s.Requests()) != 0 || s.CountGauge("a", "h", 100) != 0 {
		t.Fatal("Reset kept data")
	}
	post(`{"gauges":[{"name":"b","value":1}]}`)
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(ns, []int{1, 2, 1}) {
		t.Fatalf("arrival numbers = %v, want [1 2 1]", ns)
	}
}

func TestSetFault(t *testing.T) {
	s := newServer(t, Options{})
	s.SetFault(func(int, *Received) Action { return Action{Status: 500} })
	if a := postLegacy(t, s, `{"gauges":[{"name":"a","value":1}]}`); a.status != 500 {
		t.Fatalf("status = %d, want 500", a.status)
	}
	s.SetFault(func(int, *Received) Action { return Action{Status: 42} })
	if a := postLegacy(t, s, `{"gauges":[{"name":"a","value":1}]}`); a.status != 500 {
		t.Fatalf("invalid fault status answered %d, want 500", a.status)
	}
	s.SetFault(nil)
	if a := postLegacy(t, s, `{"gauges":[{"name":"a","value":1}]}`); a.status != 200 {
		t.Fatalf("status = %d, want 200", a.status)
	}
}

func TestConcurrent(t *testing.T) {
	s := newServer(t, Options{TLS: true, RateLimit: 1 << 20})
	const workers, perWorker = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				body := fmt.Sprintf(`{"source":"w%d","gauges":[{"name":"g","value":%d,"measure_time":%d}]}`, w, i, 1000+i)
				a, err := try(t, s.Client(), s.URL(), call{path: legacyPath, body: []byte(body)})
				if err == nil && a.status != 200 {
					err = fmt.Errorf("status %d: %s", a.status, a.body)
				}
				if err != nil {
					errs <- err
				}
				s.SetFault(nil)  // exercise the hook lock concurrently
				_ = s.Requests() // and the readers
				_ = s.CountGauge("g", "w0", 1000)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(s.Gauges()); n != workers*perWorker {
		t.Fatalf("stored %d gauges, want %d", n, workers*perWorker)
	}
	for w := range workers {
		for i := range perWorker {
			if n := s.CountGauge("g", fmt.Sprintf("w%d", w), int64(1000+i)); n != 1 {
				t.Fatalf("worker %d item %d stored %d times", w, i, n)
			}
		}
	}
	seen := map[int]bool{}
	for _, r := range s.Requests() {
		if seen[r.N] {
			t.Fatalf("arrival number %d used twice", r.N)
		}
		seen[r.N] = true
	}
}

// TestHostileBodies throws malformed input at both endpoints; every answer
// must be a 4xx and the server must stay up.
func TestHostileBodies(t *testing.T) {
	s := newServer(t, Options{MaxPast: time.Hour})
	bodies := []string{
		`null`, `true`, `"x"`, `1e999999999`, `[]`, `{"gauges":null}`, `{"gauges":[null]}`,
		`{"gauges":{"a":null}}`, `{"gauges":[{"name":null,"value":1}]}`, `{"gauges":[{"name":1,"value":1}]}`,
		`{"gauges":[{"name":"a","value":1,"source":5}]}`, `{"gauges":[{"name":"a","count":"x","sum":1}]}`,
		`{"gauges":[{"name":"a","value":1,"measure_time":99999999999999999999999}]}`,
		`{"measurements":[null]}`, `{"measurements":[{"name":"m","value":1,"tags":[]}]}`,
		`{"tags":"x","measurements":[]}`, `{"time":"x","measurements":[]}`,
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		"\xff\xfe\x00",
	}
	for _, b := range bodies {
		for _, path := range []string{legacyPath, taggedPath} {
			a := do(t, s, call{path: path, body: []byte(b)})
			if a.status < 400 || a.status > 499 {
				t.Fatalf("%s %.40q: status %d", path, b, a.status)
			}
		}
	}
	if len(s.Gauges())+len(s.Measurements()) != 0 {
		t.Fatal("hostile input stored")
	}
}
