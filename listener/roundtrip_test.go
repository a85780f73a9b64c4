package listener

import (
	"fmt"
	"sort"
	"strings"
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
// the listener answers 503 first and the output retries.
func TestRoundTrip(t *testing.T) {
	for _, api := range []string{"legacy", "tagged"} {
		for _, rejectFirst := range []bool{false, true} {
			name := api
			if rejectFirst {
				name += "/first request 503"
			}
			t.Run(name, func(t *testing.T) {
				roundTrip(t, api, rejectFirst)
			})
		}
	}
}

func roundTrip(t *testing.T, api string, rejectFirst bool) {
	acc := &ackAcc{}
	if rejectFirst {
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

	want := make([]string, 0, len(sent))
	for _, m := range sent {
		want = append(want, seriesKey(api, m.Name(), m.TagList(), m.Fields()["value"], m.Time()))
	}
	got := make([]string, 0, len(sent))
	for _, m := range acc.metrics() {
		v, _ := m.GetField("value")
		tags := m.TagList()
		if api == "legacy" { // the source tag is the host the output chose
			for _, tag := range tags {
				require.Equal(t, "source", tag.Key)
			}
			tags = []*telegraf.Tag{{Key: "host", Value: m.Tags()["source"]}}
		}
		got = append(got, seriesKey(api, m.Name(), tags, v, m.Time()))
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
