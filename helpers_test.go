package librato

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

const (
	testUser  = "ops@example.com"
	testToken = "s3cr3t-t0ken-9f8e7d"
)

// captureServer records every request body and answers 200.
type captureServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newCaptureServer(t testing.TB) *captureServer {
	c := &captureServer{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.bodies = append(c.bodies, b)
		c.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *captureServer) Bodies() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.bodies...)
}

// unstarted returns a plugin with defaults and credentials, before Init.
func unstarted() *Librato {
	l := newLibrato()
	l.APIUser = config.NewSecret([]byte(testUser))
	l.APIToken = config.NewSecret([]byte(testToken))
	l.Log = testutil.Logger{Quiet: true}
	return l
}

// newPlugin returns an initialised, connected plugin writing to url.
func newPlugin(t testing.TB, url string, configure ...func(*Librato)) *Librato {
	t.Helper()
	l := unstarted()
	l.APIURL = url
	for _, f := range configure {
		f(l)
	}
	require.NoError(t, l.Init())
	require.NoError(t, l.Connect())
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l
}

func parseLP(t testing.TB, lp string) []telegraf.Metric {
	t.Helper()
	p := &influx.Parser{}
	require.NoError(t, p.Init())
	metrics, err := p.Parse([]byte(lp))
	require.NoError(t, err)
	return metrics
}

// wireGauge is a gauge as it appears on the wire, with the value's exact
// digits.
type wireGauge struct {
	Name        string      `json:"name"`
	Source      string      `json:"source"`
	Value       json.Number `json:"value"`
	MeasureTime json.Number `json:"measure_time"`
}

func (g wireGauge) String() string {
	return g.Name + " " + g.Source + " " + g.Value.String() + " " + g.MeasureTime.String()
}

// decodeGauges returns the gauges of legacy bodies, sorted.
func decodeGauges(t testing.TB, bodies [][]byte) []string {
	t.Helper()
	out := make([]string, 0, len(bodies)) // at least one gauge per body
	for _, b := range bodies {
		var doc struct {
			Gauges []wireGauge `json:"gauges"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&doc), "body: %s", b)
		for _, g := range doc.Gauges {
			out = append(out, g.String())
		}
	}
	sort.Strings(out)
	return out
}

func newCaptureLogger() *testutil.CaptureLogger {
	return &testutil.CaptureLogger{Name: "outputs.librato"}
}

func logText(l *testutil.CaptureLogger) string {
	var b strings.Builder
	for _, m := range l.Messages() {
		b.WriteString(m.Text)
		b.WriteByte('\n')
	}
	return b.String()
}
