package librato

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// encodeTaggedPerMeasurement is the alternative to encodeTagged's grouping:
// every measurement carries its own tags. It exists to measure the choice.
func encodeTaggedPerMeasurement(buf []byte, pts []point) []byte {
	buf = append(buf, `{"measurements":[`...)
	for i := range pts {
		if i > 0 {
			buf = append(buf, ',')
		}
		p := &pts[i]
		buf = append(buf, `{"name":"`...) // names need no escaping
		buf = append(buf, p.Name...)
		buf = append(buf, '"')
		buf = append(buf, `,"tags":`...)
		buf = append(buf, p.Series.Tags...)
		buf = append(buf, `,"value":`...)
		buf = strconv.AppendFloat(buf, p.Value, 'g', -1, 64)
		buf = append(buf, `,"time":`...)
		buf = strconv.AppendInt(buf, p.Time, 10)
		buf = append(buf, '}')
	}
	return append(buf, "]}"...)
}

func taggedPoints(tb testing.TB, metrics []telegraf.Metric) []point {
	c, err := newConverter(converterConfig{tagged: true, template: "host"}, newStats("bench-tagged"), testutil.Logger{Quiet: true})
	require.NoError(tb, err)
	return c.convert(metrics)
}

// groupingWorkloads: a fleet, where a request of 300 spans ~35 tag sets, and
// one wide metric (say a Prometheus scrape of one target), where every
// measurement of a request shares its tags.
func groupingWorkloads() map[string][]telegraf.Metric {
	now := time.Unix(1_790_000_000, 0)
	fields := map[string]any{}
	for i := range 3000 {
		fields[fmt.Sprintf("series_%04d", i)] = float64(i)
	}
	wide := metric.New("app", map[string]string{"host": "web01", "job": "api", "instance": "10.0.0.1:9100", "env": "prod"}, fields, now)
	return map[string][]telegraf.Metric{
		"fleet": multiInputWorkload(100, now),
		"wide":  {wide},
	}
}

// BenchmarkTaggedGrouping compares top-level tags for the first tag set of a
// request (what the plugin sends) with tags on every measurement, over the
// 100-host multi-input workload, in requests of 300.
func BenchmarkTaggedGrouping(b *testing.B) {
	for name, metrics := range groupingWorkloads() {
		b.Run(name, func(b *testing.B) { benchmarkGrouping(b, taggedPoints(b, metrics)) })
	}
}

func benchmarkGrouping(b *testing.B, pts []point) {
	for _, variant := range []struct {
		name   string
		encode func([]byte, []point) []byte
	}{{"grouped", encodeTagged}, {"per-measurement", encodeTaggedPerMeasurement}} {
		b.Run(variant.name, func(b *testing.B) {
			var buf []byte
			bytes := 0
			for b.Loop() {
				bytes = 0
				for lo := 0; lo < len(pts); lo += 300 {
					buf = variant.encode(buf[:0], pts[lo:min(lo+300, len(pts))])
					bytes += len(buf)
				}
			}
			b.ReportMetric(float64(bytes)/float64(len(pts)), "B/measurement")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/measurement")
		})
	}
}

func TestTaggedGroupingIsSmaller(t *testing.T) {
	pts := taggedPoints(t, groupingWorkloads()["wide"])
	grouped, each := 0, 0
	for lo := 0; lo < len(pts); lo += 300 {
		batch := pts[lo:min(lo+300, len(pts))]
		grouped += len(encodeTagged(nil, batch))
		each += len(encodeTaggedPerMeasurement(nil, batch))
	}
	require.Less(t, 2*grouped, each, "one shared tag set: grouping halves the body")
}
