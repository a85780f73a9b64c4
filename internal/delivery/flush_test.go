package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// scriptedAPI is an in-memory Librato (an http.RoundTripper, no sockets):
// answer decides each request's status and body from its arrival number
// and the names it carries; the log records "names -> status" per request.
type scriptedAPI struct {
	answer func(n int, names []string) (int, string)

	mu  sync.Mutex
	log []string
}

func (a *scriptedAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	var doc struct {
		Gauges       []struct{ Name string } `json:"gauges"`
		Measurements []struct{ Name string } `json:"measurements"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding the request: %w", err)
	}
	names := make([]string, 0, len(doc.Gauges)+len(doc.Measurements))
	for _, g := range doc.Gauges {
		names = append(names, g.Name)
	}
	for _, m := range doc.Measurements {
		names = append(names, m.Name)
	}
	a.mu.Lock()
	n := len(a.log) + 1
	status, text := a.answer(n, names)
	a.log = append(a.log, fmt.Sprintf("%s -> %d", strings.Join(names, ","), status))
	a.mu.Unlock()
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader([]byte(text))),
		Request:    req,
	}, nil
}

const (
	valueError = `{"errors":{"params":{"value":["is not accepted here"]}}}`
	control    = ControlName
)

// rejectNames answers Librato's field error to any request carrying one of
// bad, and 200 otherwise.
func rejectNames(bad ...string) func(int, []string) (int, string) {
	return func(_ int, names []string) (int, string) {
		for _, n := range names {
			for _, b := range bad {
				if n == b {
					return http.StatusBadRequest, valueError
				}
			}
		}
		return http.StatusOK, "{}"
	}
}

// newTestSender is a Sender on a scripted API and a fake clock, one request
// at a time so the sequence is exact.
func newTestSender(t *testing.T, api http.RoundTripper, clock Clock) (*Sender, Stats) {
	t.Helper()
	user, token := config.NewSecret([]byte(testUser)), config.NewSecret([]byte(testToken))
	stats := Stats{
		Written: selfstat.Register("test", "written", nil), Rejected: selfstat.Register("test", "rejected", nil),
		Requests: selfstat.Register("test", "requests", nil), Retries: selfstat.Register("test", "retries", nil),
		APIFailed: selfstat.Register("test", "api_failed", nil), RateLimit: selfstat.Register("test", "rate_limit", nil),
		RateRemaining: selfstat.Register("test", "rate_remaining", nil), RequestTime: selfstat.Register("test", "request_time", nil),
		Controls: selfstat.Register("test", "controls", nil),
	}
	for _, s := range []selfstat.Stat{stats.Written, stats.Rejected, stats.Requests, stats.Controls} {
		s.Set(0)
	}
	s := New(Config{
		User: &user, Token: &token,
		Timeout: 5 * time.Second, RetryBudget: 5 * time.Second, MaxRetryAfter: time.Minute,
		MeasurementsPerRequest: 300, Concurrency: 1,
		Transport: api, UserAgent: "test", Clock: clock,
		Log: testutil.Logger{Quiet: true}, Stats: stats,
	})
	require.NoError(t, s.Connect())
	t.Cleanup(s.Close)
	return s, stats
}

// TestDeliverFollowsTheEvidenceRule drives Deliver through an in-memory API
// and a fake clock, and checks the exact sequence of requests.
func TestDeliverFollowsTheEvidenceRule(t *testing.T) {
	cases := []struct {
		name     string
		names    []string // measurements, oldest first
		answer   func(n int, names []string) (int, string)
		requests []string
		settled  []bool
		dropped  int64
		errHas   string
	}{
		{
			name:  "poison alone: the control supplies the acceptance between R1 and R2",
			names: []string{"bad"}, answer: rejectNames("bad"),
			requests: []string{"bad -> 400", control + " -> 200", "bad -> 400"},
			settled:  []bool{true}, dropped: 1,
		},
		{
			name:  "an acceptance after R1 needs no control",
			names: []string{"bad", "good1", "good2", "good3"}, answer: rejectNames("bad"),
			requests: []string{"bad,good1,good2,good3 -> 400", "bad,good1 -> 400", "bad -> 400", "good1 -> 200", "good2,good3 -> 200", "bad -> 400"},
			settled:  []bool{true, true, true, true}, dropped: 1,
		},
		{
			name:  "an endpoint rejecting everything, the control too, proves nothing",
			names: []string{"a", "b"}, answer: func(int, []string) (int, string) { return http.StatusBadRequest, valueError },
			requests: []string{"a,b -> 400", "a -> 400", "b -> 400", control + " -> 400"},
			settled:  []bool{false, false}, errHas: "not even a control measurement",
		},
		{
			name:  "an endpoint that changed its mind delivers at R2",
			names: []string{"a", "b"}, answer: func(n int, _ []string) (int, string) {
				if n <= 3 {
					return http.StatusBadRequest, valueError
				}
				return http.StatusOK, "{}"
			},
			requests: []string{"a,b -> 400", "a -> 400", "b -> 400", control + " -> 200", "a -> 200", "b -> 200"},
			settled:  []bool{true, true},
		},
		{
			name:  "params.name holding messages is isolated",
			names: []string{"toolong", "ok"}, answer: func(_ int, names []string) (int, string) {
				for _, n := range names {
					if n == "toolong" {
						return http.StatusBadRequest, `{"errors":{"params":{"name":["is too long"]}}}`
					}
				}
				return http.StatusOK, "{}"
			},
			requests: []string{"toolong,ok -> 400", "toolong -> 400", "ok -> 200", "toolong -> 400"},
			settled:  []bool{true, true}, dropped: 1,
		},
		{
			name:  "params.name as a plain string is context: the request halts",
			names: []string{"a"}, answer: func(int, []string) (int, string) {
				return http.StatusBadRequest, `{"errors":{"params":{"name":"a"}}}`
			},
			requests: []string{"a -> 400"},
			settled:  []bool{false}, errHas: "an error about the request",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &scriptedAPI{answer: tc.answer}
			clock := &fakeClock{now: testEpoch()}
			s, stats := newTestSender(t, api, clock)
			src := &Series{Source: "web"}
			ms := make([]Measurement, len(tc.names))
			for i, n := range tc.names {
				ms[i] = Measurement{Name: n, Series: src, Time: testEpoch().Unix() - int64(len(tc.names)-i), Value: 1}
			}
			res, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/metrics"}, clock.Now())
			require.Equal(t, tc.requests, api.log)
			require.Equal(t, tc.settled, res.Settled)
			require.Equal(t, tc.dropped, stats.Rejected.Get())
			require.Len(t, res.Proofs, int(tc.dropped))
			for _, p := range res.Proofs {
				require.Less(t, p.R1.Answered, p.A.Sent, "A sent after R1's answer")
				require.Less(t, p.A.Answered, p.R2.Sent, "R2 sent after A's answer")
				require.Equal(t, "https://librato.test/v1/metrics", p.URL)
			}
			if tc.errHas == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.errHas)
			}
		})
	}
}

// TestControlMeasurement: what the control request carries, per API.
func TestControlMeasurement(t *testing.T) {
	cases := []struct {
		source string
		tagged bool
		want   string
	}{
		{"", false, `{"gauges":[{"name":"telegraf.librato.control","source":"telegraf-librato","value":1,"measure_time":%d}]}`},
		{"edge-7", false, `{"gauges":[{"name":"telegraf.librato.control","source":"edge-7","value":1,"measure_time":%d}]}`},
		{"", true, `{"tags":{"source":"telegraf-librato"},"measurements":[{"name":"telegraf.librato.control","value":1,"time":%d}]}`},
		{"not a source!", false, `{"gauges":[{"name":"telegraf.librato.control","source":"telegraf-librato","value":1,"measure_time":%d}]}`},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q tagged=%v", tc.source, tc.tagged), func(t *testing.T) {
			var body []byte
			api := &scriptedAPI{answer: func(_ int, names []string) (int, string) {
				if names[0] == "bad" {
					return http.StatusBadRequest, valueError
				}
				return http.StatusOK, "{}"
			}}
			rec := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				b, err := io.ReadAll(req.Body)
				if err != nil {
					return nil, err
				}
				if bytes.Contains(b, []byte(ControlName)) {
					body = b
				}
				req.Body = io.NopCloser(bytes.NewReader(b))
				return api.RoundTrip(req)
			})
			clock := &fakeClock{now: testEpoch().Add(1500 * time.Millisecond)}
			s, _ := newTestSender(t, rec, clock)
			s.control = controlSeries(tc.source)
			ms := []Measurement{{Name: "bad", Series: &Series{Source: "web", Tags: `{"host":"web"}`}, Time: 1, Value: 1}}
			_, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/x", Tagged: tc.tagged}, clock.Now())
			require.NoError(t, err)
			require.JSONEq(t, fmt.Sprintf(tc.want, testEpoch().Unix()+1), string(body), "the current whole second")
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
