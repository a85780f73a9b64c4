package listener

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/inputs/http_listener_v2"
	"github.com/influxdata/telegraf/plugins/parsers/json_v2"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// benchGauges is the measurements per request: the batch size Telegraf's
// and most Librato clients use.
const benchGauges = 300

// legacyArrayBody is a legacy request in the array form, the shape both
// plugins are fed.
func legacyArrayBody(n int) []byte {
	parts := make([]string, 0, n)
	for i := range n {
		parts = append(parts, fmt.Sprintf(`{"name":"app.requests.latency_%d","value":%d.25,"source":"web-%d.example.com","measure_time":1699999980}`,
			i%50, i, i%7))
	}
	return []byte(`{"gauges":[` + strings.Join(parts, ",") + `]}`)
}

// BenchmarkLibratoListener: a legacy request through the handler, with
// delivery tracking and an accumulator that delivers at once.
func BenchmarkLibratoListener(b *testing.B) {
	l := start(b, &ackAcc{discard: true}, nil)
	body := legacyArrayBody(benchGauges)
	benchHandler(b, l, "/v1/metrics", body, http.StatusOK)
}

// BenchmarkHTTPListenerV2JSONv2: the same body through inputs.http_listener_v2
// with the json_v2 parser, the route a user would otherwise configure.
func BenchmarkHTTPListenerV2JSONv2(b *testing.B) {
	parser := &json_v2.Parser{Configs: []json_v2.Config{{
		MeasurementName: "librato",
		JSONObjects: []json_v2.Object{{
			Path:            "gauges",
			TimestampKey:    "measure_time",
			TimestampFormat: "unix",
			Tags:            []string{"name", "source"},
		}},
	}}}
	require.NoError(b, parser.Init())
	h, ok := inputs.Inputs["http_listener_v2"]().(*http_listener_v2.HTTPListenerV2)
	require.True(b, ok)
	h.ServiceAddress = "tcp://127.0.0.1:0"
	h.Log = testutil.Logger{Quiet: true}
	h.SetParser(parser)
	require.NoError(b, h.Init())
	require.NoError(b, h.Start(&testutil.NopAccumulator{}))
	b.Cleanup(h.Stop)

	// The parser must understand the body as intended.
	ms, err := parser.Parse(legacyArrayBody(2))
	require.NoError(b, err)
	require.Len(b, ms, 2)
	require.Equal(b, "web-1.example.com", ms[1].Tags()["source"])

	benchHandler(b, h, "/telegraf", legacyArrayBody(benchGauges), http.StatusNoContent)
}

func benchHandler(b *testing.B, h http.Handler, path string, body []byte, want int) {
	b.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, benchRequest(path, body))
	require.Equal(b, want, rec.Code, rec.Body.String())

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, benchRequest(path, body))
		if rec.Code != want {
			b.Fatalf("answer %d: %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	measurements := float64(b.N) * benchGauges
	b.ReportMetric(measurements/b.Elapsed().Seconds(), "metrics/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/measurements, "allocs/metric")
}

func benchRequest(path string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}
