package librato

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	builtin "github.com/influxdata/telegraf/plugins/outputs/librato"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// TestDifferentialAgainstBuiltin is the drop-in guarantee: over a corpus of
// every Telegraf value type and many tag shapes and templates, the gauges we
// send are byte-identical in name, source, value and measure_time to those
// of Telegraf's built-in plugin.
func TestDifferentialAgainstBuiltin(t *testing.T) {
	corpus := differentialCorpus()
	templates := []string{
		"host", "tags", "host.tags", "region.host", "missing", "missing.host", "dc.missing.region", "tags.host", "field", "measurement.host",
	}
	for _, template := range templates {
		t.Run(template, func(t *testing.T) {
			theirs := runBuiltin(t, template, corpus)
			ours := runOurs(t, template, corpus)
			if template != "missing" {
				require.NotEmpty(t, theirs, "the corpus must exercise this template")
			}
			require.Equal(t, theirs, ours)
		})
	}
}

func runBuiltin(t *testing.T, template string, metrics []telegraf.Metric) []string {
	srv := newCaptureServer(t)
	b := builtin.NewLibrato(srv.URL)
	b.APIUser = config.NewSecret([]byte(testUser))
	b.APIToken = config.NewSecret([]byte(testToken))
	b.Template = template
	b.Log = testutil.Logger{Quiet: true}
	require.NoError(t, b.Connect())
	require.NoError(t, b.Write(metrics))
	return decodeGauges(t, srv.Bodies())
}

func runOurs(t *testing.T, template string, metrics []telegraf.Metric) []string {
	srv := newCaptureServer(t)
	l := newPlugin(t, srv.URL, func(l *Librato) { l.Template = template })
	require.NoError(t, l.Write(metrics))
	return decodeGauges(t, srv.Bodies())
}

// differentialCorpus holds metrics the built-in plugin delivers correctly:
// no NaN or ±Inf (it fails the whole flush), no names or sources over 255
// characters and no values beyond Librato's exponent limits (Librato
// rejects them).
func differentialCorpus() []telegraf.Metric {
	ts := time.Unix(1_790_000_000, 0)
	values := []any{
		int64(0), int64(-1), int64(42), int64(math.MaxInt64), int64(math.MinInt64),
		uint64(0), uint64(1 << 53), uint64(1<<53 + 1), uint64(math.MaxUint64),
		0.0, math.Copysign(0, -1), 1.5, -2.25, 1e-6, 9.99e-7, 1e-7, 1.2345e-100, 1e20, 1e21, 123456789.123456789,
		1e126, -9.9e126, math.SmallestNonzeroFloat64 * 1e200, 0.1, 1.0 / 3.0, 5e-324 * 1e250,
		true, false, "a string", "",
	}
	tagShapes := []map[string]string{
		{"host": "web01"},
		{"host": "web01.example.com", "region": "eu-west", "dc": "fra1"},
		{"region": "us"},
		{},
		{"host": "h ö:st/x", "region": "a.b.c"},
		{"host": "ünïcødé", "dc": "tab\there", "z": "last"},
		{"host": "colon:host", "region": "r", "extra": "e", "more": "m"},
		{"host": "\xff\xfe invalid utf8"},
		{"host": ""},
		{"region": "only.region", "dc": "x"},
	}
	names := []string{"cpu", "disk.io", "mem-used", "net:if", "my measurement", "ünits", "m/with/slash", "a\"quote"}
	fields := []string{"value", "usage_idle", "used percent", "io:time", "x.y", "ün"}

	const random = 500
	out := make([]telegraf.Metric, 0, len(tagShapes)*len(names)+len(values)+random+1)
	for i, tags := range tagShapes {
		for j, name := range names {
			f := map[string]any{}
			for k, key := range fields {
				f[key] = values[(i*7+j*3+k)%len(values)]
			}
			out = append(out, metric.New(name, tags, f, ts.Add(time.Duration(i*len(names)+j)*time.Second)))
		}
	}
	for _, v := range values {
		out = append(out, metric.New("types", map[string]string{"host": "t"}, map[string]any{"v": v}, ts))
	}
	// Random shapes, fixed seed: reproducible.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		tags := map[string]string{}
		for k := range rng.IntN(5) {
			tags[[]string{"host", "region", "dc", "rack", "svc"}[k]] = fmt.Sprintf("v%d.%s", rng.IntN(50), strings.Repeat("x", rng.IntN(3)))
		}
		f := map[string]any{}
		for k := range 1 + rng.IntN(6) {
			f[fmt.Sprintf("f%d", k)] = randomValue(rng)
		}
		out = append(out, metric.New(fmt.Sprintf("m%d", rng.IntN(20)), tags, f, ts.Add(time.Duration(i)*time.Millisecond*1500)))
	}
	// Zero time: both skip it.
	out = append(out, metric.New("zero", map[string]string{"host": "z"}, map[string]any{"v": 1.0}, time.Unix(0, 0)))
	return out
}

func randomValue(rng *rand.Rand) any {
	switch rng.IntN(5) {
	case 0:
		return rng.Int64() - math.MaxInt64/2
	case 1:
		return rng.Uint64()
	case 2:
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))
	case 3:
		return rng.IntN(2) == 1
	default:
		return rng.Float64()
	}
}
