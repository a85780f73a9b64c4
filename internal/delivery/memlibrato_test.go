package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// memLibrato is an in-memory legacy Librato for the cost tests: no sockets,
// so a hundred thousand measurements take a fraction of a second. It rejects
// a request for the first measurement its rule refuses, with the error body
// its phrase writes (which may blame the wrong thing), and stores the rest
// of a request only when nothing in it is refused. tooLarge, when set, is
// asked first and may answer 413 instead.
type memLibrato struct {
	rule     func(g memGauge) (field, msg string, bad bool)
	phrase   func(g memGauge, field, msg string) string
	tooLarge func(n int, body []byte) bool

	requests, refused413 atomic.Int64
	mu                   sync.Mutex
	stored               map[memGauge]int
}

type memGauge struct {
	Name   string  `json:"name"`
	Source string  `json:"source"`
	Value  float64 `json:"value"`
	Time   int64   `json:"measure_time"`
}

// librato413 is nginx's page: not Librato's JSON.
const librato413 = `<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>`

func (l *memLibrato) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	n := int(l.requests.Add(1))
	if l.tooLarge != nil && l.tooLarge(n, body) {
		l.refused413.Add(1)
		return answer(req, http.StatusRequestEntityTooLarge, librato413), nil
	}
	gauges, ok := decodeGauges(body)
	if !ok {
		return answer(req, http.StatusBadRequest, `{"errors":{"request":["malformed JSON"]}}`), nil
	}
	if l.rule != nil {
		for _, g := range gauges {
			if field, msg, bad := l.rule(g); bad {
				return answer(req, http.StatusBadRequest, l.phrase(g, field, msg)), nil
			}
		}
	}
	l.mu.Lock()
	if l.stored == nil {
		l.stored = map[memGauge]int{}
	}
	for _, g := range gauges {
		l.stored[g]++
	}
	l.mu.Unlock()
	return answer(req, http.StatusOK, `{}`), nil
}

func decodeGauges(body []byte) ([]memGauge, bool) {
	var doc struct {
		Gauges []memGauge `json:"gauges"`
	}
	err := json.Unmarshal(body, &doc)
	return doc.Gauges, err == nil
}

func answer(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader([]byte(body))),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// librato's own phrasing: the field with its message, the metric as context.
func namedPhrase(g memGauge, field, msg string) string {
	return fmt.Sprintf(`{"errors":{"params":{%q:[%q],"name":%q}}}`, field, msg, g.Name)
}

// testStat is a selfstat.Stat that only counts.
type testStat struct{ v atomic.Int64 }

func (*testStat) Name() string            { return "librato" }
func (*testStat) FieldName() string       { return "test" }
func (*testStat) Tags() map[string]string { return nil }
func (*testStat) Unregister()             {}
func (s *testStat) Incr(v int64)          { s.v.Add(v) }
func (s *testStat) Set(v int64)           { s.v.Store(v) }
func (s *testStat) Get() int64            { return s.v.Load() }

// statsWith is Stats with rejected and a counter in every other field,
// whatever fields Stats grows (the core may not find one nil).
func statsWith(rejected *testStat) Stats {
	st := Stats{Rejected: rejected}
	v := reflect.ValueOf(&st).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.IsNil() {
			f.Set(reflect.ValueOf(&testStat{}))
		}
	}
	return st
}

// costSender is a connected Sender for lib with the plugin's defaults:
// 300 measurements per request, 10 concurrent, and a fake clock.
func costSender(t testing.TB, lib http.RoundTripper, clock Clock) (*Sender, *testStat) {
	t.Helper()
	rejected := &testStat{}
	user, token := config.NewSecret([]byte("user@example.com")), config.NewSecret([]byte("secret-token"))
	s := New(Config{
		User: &user, Token: &token,
		Timeout: 30 * time.Second, RetryBudget: 30 * time.Second, MaxRetryAfter: time.Minute,
		MeasurementsPerRequest: 300, Concurrency: 10,
		TLS: &tls.ClientConfig{}, Proxy: &proxy.HTTPProxy{},
		Transport: lib, Clock: clock, UserAgent: "cost-test",
		Log: testutil.Logger{Quiet: true}, Stats: statsWith(rejected),
	})
	require.NoError(t, s.Connect())
	t.Cleanup(s.Close)
	return s, rejected
}

// flushes delivers ms as Telegraf would: each flush resends what the last
// one left unsettled, until nothing is left or limit flushes. It returns
// the requests of each flush.
func flushes(t testing.TB, s *Sender, lib *memLibrato, clock *fakeClock, ms []Measurement, limit int) []int64 {
	t.Helper()
	perFlush := make([]int64, 0, limit)
	for k := range limit {
		if len(ms) == 0 {
			break
		}
		before := lib.requests.Load()
		res, err := s.Deliver(ms, Endpoint{URL: "https://metrics-api.librato.com/v1/metrics"}, clock.Now())
		perFlush = append(perFlush, lib.requests.Load()-before)
		if err != nil {
			t.Logf("flush %d: %v", k+1, err)
		}
		if len(res.Settled) == 0 {
			continue
		}
		left := ms[:0]
		for i := range ms {
			if !res.Settled[i] {
				left = append(left, ms[i])
			}
		}
		ms = left
		clock.advance(10 * time.Second) // flush_interval
	}
	require.Empty(t, ms, "still unsettled after %d flushes", limit)
	return perFlush
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
