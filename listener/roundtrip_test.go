package listener

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/outputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato" // registers outputs.librato
)

// TestRoundTrip sends this project's outputs.librato to the listener, in
// process: every gauge comes out once, with the same name and source
// (legacy) or tags as Librato compares them (tagged: lower-cased), also when
// the listener answers 503 first and the output retries; when the first
// acknowledgement is lost (stored, but the client sees a 503), only that
// request's gauges come out twice.
func TestRoundTrip(t *testing.T) {
	for _, api := range []string{"legacy", "tagged"} {
		for _, f := range []fault{noFault, rejectFirst, loseFirstAck} {
			t.Run(api+"/"+f.String(), func(t *testing.T) {
				roundTrip(t, api, f)
			})
		}
	}
}

type fault int

const (
	noFault      fault = iota
	rejectFirst        // the outputs drop the first request: 503
	loseFirstAck       // the first request is stored, its 200 replaced by a 503
)

func (f fault) String() string {
	return [...]string{"no fault", "first request 503", "first ack lost"}[f]
}

func roundTrip(t *testing.T, api string, f fault) {
	acc := &ackAcc{}
	if f == rejectFirst {
		acc.reject = func(n int) bool { return n == 0 }
	}
	l := start(t, acc, func(l *Listener) {
		l.BasicUsername = config.NewSecret([]byte("agent@example.com"))
		l.BasicPassword = config.NewSecret([]byte("s3cret"))
	})
	path := legacyPath
	if api == "tagged" {
		path = taggedPath
	}

	creator, ok := outputs.Outputs["librato"]
	require.True(t, ok)
	out, ok := creator().(*librato.Librato)
	require.True(t, ok)
	out.APIURL = l.url(path)
	var firstStored []telegraf.Metric
	if f == loseFirstAck {
		// A proxy that loses the first answer; requests go one at a time so
		// the first request's metrics are known.
		var mu sync.Mutex
		first := true
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			before := len(acc.metrics())
			rec := httptest.NewRecorder()
			l.ServeHTTP(rec, r)
			if first && rec.Code/100 == 2 {
				first = false
				firstStored = acc.metrics()[before:]
				http.Error(w, `{"errors":{"system":["lost"]}}`, http.StatusServiceUnavailable)
				return
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			if _, err := w.Write(rec.Body.Bytes()); err != nil {
				t.Logf("proxy: writing the answer: %v", err) // the output sees a broken answer and retries
			}
		}))
		t.Cleanup(proxy.Close)
		out.APIURL = proxy.URL + path
		out.ConcurrentWrites = 1
	}
	out.API = api
	out.APIUser = config.NewSecret([]byte("agent@example.com"))
	out.APIToken = config.NewSecret([]byte("s3cret"))
	out.MeasurementsPerRequest = 50 // several requests per Write
	out.Log = testutil.Logger{Quiet: true}
	require.NoError(t, out.Init())
	require.NoError(t, out.Connect())
	defer out.Close()

	sent := gaugesToSend(120)
	// Telegraf's agent keeps a failed batch and writes it again; do the
	// same (bounded) with fresh copies, as the agent's buffer would.
	var err error
	for range 5 {
		if err = out.Write(copyMetrics(sent)); err == nil {
			break
		}
	}
	require.NoError(t, err)
	// With rejectFirst the first request's metrics never reached acc.kept:
	// finding every gauge below proves the output sent them again.
	if f == loseFirstAck {
		require.NotEmpty(t, firstStored)
	}

	want := make([]string, 0, len(sent))
	for _, m := range sent {
		want = append(want, seriesKey(api, m.Name(), m.TagList(), m.Fields()["value"], m.Time()))
	}
	got := make([]string, 0, len(sent))
	key := func(m telegraf.Metric) string {
		v, _ := m.GetField("value")
		tags := m.TagList()
		if api == "legacy" { // the source tag is the host the output chose
			for _, tag := range tags {
				require.Equal(t, "source", tag.Key)
			}
			tags = []*telegraf.Tag{{Key: "host", Value: m.Tags()["source"]}}
		}
		return seriesKey(api, m.Name(), tags, v, m.Time())
	}
	for _, m := range acc.metrics() {
		got = append(got, key(m))
	}
	// Duplicates may come only from the lost acknowledgement: take one
	// copy of each of its gauges out, then every gauge is there once.
	for _, m := range firstStored {
		k := key(m)
		i := slices.Index(got, k)
		require.GreaterOrEqual(t, i, 0, k)
		got = slices.Delete(got, i, i+1)
	}
	sort.Strings(want)
	sort.Strings(got)
	require.Equal(t, strings.Join(want, "\n"), strings.Join(got, "\n"), "every gauge exactly once")
}

// seriesKey is a gauge as Librato tells gauges apart.
func seriesKey(api, name string, tags []*telegraf.Tag, value any, tm time.Time) string {
	var b strings.Builder
	b.WriteString(name)
	for _, tag := range tags {
		k, v := tag.Key, tag.Value
		if api == "tagged" {
			k, v = strings.ToLower(k), strings.ToLower(v)
		}
		fmt.Fprintf(&b, ",%s=%s", k, v)
	}
	fmt.Fprintf(&b, " %v %d", value, tm.Unix())
	return b.String()
}

// gaugesToSend: distinct series with mixed-case tags, as agents send them.
func gaugesToSend(n int) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, n)
	for i := range n {
		out = append(out, metric.New(
			fmt.Sprintf("app.gauge%d", i%30),
			map[string]string{"host": fmt.Sprintf("Web-%d", i/30)},
			map[string]any{"value": float64(i) + 0.5},
			receiveTime.Add(-time.Duration(i%7)*time.Second),
		))
	}
	return out
}

func copyMetrics(ms []telegraf.Metric) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Copy())
	}
	return out
}
