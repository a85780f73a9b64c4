package listener

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// counters are one listener's selfstat values as inputs.internal reports
// them: measurement internal_librato_listener, tagged with its address.
type counters struct {
	requests, measurements int64
	responses              map[string]int64 // by status tag; zeros left out
}

// readCounters reads the process-global selfstat registry and keeps what
// carries address.
func readCounters(t *testing.T, address string) counters {
	t.Helper()
	c := counters{responses: map[string]int64{}}
	seen := false
	for _, m := range selfstat.Metrics() {
		if m.Name() != "internal_librato_listener" || m.Tags()["address"] != address {
			continue
		}
		seen = true
		if status, ok := m.GetTag("status"); ok {
			require.Len(t, m.Fields(), 1, "responses metric %v", m.Fields())
			if v := m.Fields()["responses"].(int64); v != 0 {
				c.responses[status] = v
			}
			continue
		}
		require.Len(t, m.Tags(), 1, "unexpected tags %v", m.Tags())
		require.Len(t, m.Fields(), 2, "unexpected fields %v", m.Fields())
		c.requests = m.Fields()["requests_received"].(int64)
		c.measurements = m.Fields()["measurements_delivered"].(int64)
	}
	require.True(t, seen, "no internal_librato_listener stats for %s", address)
	return c
}

// minus is what changed since before: ports are reused within a process
// and selfstat returns the already registered stat for the same tags.
func (c counters) minus(before counters) counters {
	d := counters{
		requests:     c.requests - before.requests,
		measurements: c.measurements - before.measurements,
		responses:    map[string]int64{},
	}
	for status, v := range c.responses {
		if v -= before.responses[status]; v != 0 {
			d.responses[status] = v
		}
	}
	return d
}

type statsRequest struct {
	method, path, ctype, body string
	token                     string // as the Basic password, if set
	want                      int
}

func legacyReq(body string, want int) statsRequest {
	return statsRequest{http.MethodPost, legacyPath, "application/json", body, "tok", want}
}

func taggedReq(body string, want int) statsRequest {
	return statsRequest{http.MethodPost, taggedPath, "application/json", body, "tok", want}
}

// TestStats: the selfstat counters after a known sequence of requests:
// requests_received counts every request the handler saw, responses every
// answer by status, measurements_delivered only measurements of requests
// answered 2xx.
func TestStats(t *testing.T) {
	const (
		threeLegacy = `{"source":"h","gauges":[{"name":"a","value":1},{"name":"b","count":2,"sum":3}],"counters":[{"name":"c","value":4}]}`
		twoTagged   = `{"tags":{"host":"h"},"measurements":[{"name":"a","value":1},{"name":"b","value":2}]}`
		oneLegacy   = `{"gauges":[{"name":"a","value":1}]}`
	)
	cases := []struct {
		name      string
		configure func(*Listener)
		acc       func() telegraf.Accumulator
		requests  []statsRequest
		want      counters
	}{
		{
			name: "accepted",
			requests: []statsRequest{
				legacyReq(threeLegacy, 200),
				taggedReq(twoTagged, 202),
				legacyReq(oneLegacy, 200),
				{http.MethodGet, legacyPath, "", "", "tok", 200}, // probe: no measurements
				{http.MethodHead, legacyPath, "", "", "tok", 200},
			},
			want: counters{requests: 5, measurements: 6, responses: map[string]int64{"200": 4, "202": 1}},
		},
		{
			name:      "client errors deliver nothing",
			configure: func(l *Listener) { l.MaxBodySize = 200 },
			requests: []statsRequest{
				legacyReq(`{"gauges":`, 400),
				taggedReq(`{"measurements":[{"name":"a","value":1}]}`, 400),
				legacyReq(`{"gauges":[{"name":"ok","value":1},{"name":"b@d","value":1}]}`, 400),
				legacyReq(`{"gauges":[{"name":"a","value":1,"source":"`+strings.Repeat("s", 200)+`"}]}`, 413),
				{http.MethodPost, legacyPath, "text/plain", oneLegacy, "tok", 415},
				{http.MethodPost, "/v1/other", "application/json", oneLegacy, "tok", 404},
				{http.MethodPut, legacyPath, "application/json", oneLegacy, "tok", 405},
				{http.MethodGet, taggedPath, "", "", "tok", 405},
				legacyReq(oneLegacy, 200),
			},
			want: counters{requests: 9, measurements: 1, responses: map[string]int64{
				"400": 3, "413": 1, "415": 1, "404": 1, "405": 2, "200": 1,
			}},
		},
		{
			name:      "unauthenticated",
			configure: func(l *Listener) { l.Tokens = secrets("tok") },
			requests: []statsRequest{
				{http.MethodPost, legacyPath, "application/json", oneLegacy, "", 401},
				{http.MethodPost, legacyPath, "application/json", oneLegacy, "wrong", 401},
				{http.MethodPost, taggedPath, "application/json", twoTagged, "wrong", 401},
				taggedReq(twoTagged, 202),
			},
			want: counters{requests: 4, measurements: 2, responses: map[string]int64{"401": 3, "202": 1}},
		},
		{
			name: "rejected by an output",
			acc:  func() telegraf.Accumulator { return &ackAcc{reject: func(n int) bool { return n == 0 }} },
			requests: []statsRequest{
				legacyReq(threeLegacy, 503),
				legacyReq(oneLegacy, 200),
			},
			want: counters{requests: 2, measurements: 1, responses: map[string]int64{"503": 1, "200": 1}},
		},
		{
			// Nothing accepts the metrics: the request times out, and a
			// timed-out request was not delivered.
			name:      "delivery timeout",
			configure: func(l *Listener) { l.DeliveryTimeout = config.Duration(time.Millisecond) },
			acc:       func() telegraf.Accumulator { return &testutil.Accumulator{} },
			requests:  []statsRequest{legacyReq(threeLegacy, 503)},
			want:      counters{requests: 1, measurements: 0, responses: map[string]int64{"503": 1}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var acc telegraf.Accumulator = &ackAcc{}
			if c.acc != nil {
				acc = c.acc()
			}
			l := start(t, acc, c.configure)
			address := l.Addr().String()
			before := readCounters(t, address)
			for i, r := range c.requests {
				req, err := http.NewRequest(r.method, l.url(r.path), strings.NewReader(r.body))
				require.NoError(t, err)
				if r.ctype != "" {
					req.Header.Set("Content-Type", r.ctype)
				}
				if r.token != "" {
					req.SetBasicAuth("me@example.com", r.token)
				}
				a := do(t, req)
				require.Equal(t, r.want, a.status, "request %d: %s", i, a.body)
			}
			// The counters are updated before the answer is written, so
			// they are final once the last answer arrived.
			got := readCounters(t, address).minus(before)
			require.Equal(t, c.want, got)
		})
	}
}
