package libratoapi

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchSize is a typical batch: Telegraf and python-librato send 300
// measurements per request (librato-api.md §3).
const benchSize = 300

func legacyBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"source":"web-1","measure_time":1699999980,"gauges":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		if i%10 == 9 { // one complex gauge in ten, as statsd timers send
			fmt.Fprintf(&b, `{"name":"app.timer.%d","count":12,"sum":340.5,"min":3.25,"max":80,"sum_squares":15000.75}`, i)
			continue
		}
		fmt.Fprintf(&b, `{"name":"app.metric.%d","value":%d.%d,"source":"db-%d"}`, i, i*7, i%10, i%4)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func taggedBody(n int, ownTags bool) []byte {
	var b strings.Builder
	b.WriteString(`{"tags":{"host":"web-1","region":"eu-west","service":"api"},"time":1699999980,"measurements":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		tags := ""
		if ownTags {
			tags = fmt.Sprintf(`,"tags":{"host":"web-%d","region":"eu-west","code":"%d"}`, i%8, 200+i%5)
		}
		fmt.Fprintf(&b, `{"name":"app.metric.%d","value":%d.%d%s}`, i, i*7, i%10, tags)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// benchDecode reports time and allocations per measurement, decoding
// into a reused dst and validating each measurement, as a listener would.
func benchDecode(b *testing.B, body []byte, decode decodeFunc) {
	dst, e := decode(body, nil)
	if e != nil {
		b.Fatal(string(e.Body))
	}
	n := len(dst)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	now := time.Unix(nowUnix, 0)
	for b.Loop() {
		var e *Error
		dst, e = decode(body, dst[:0])
		if e != nil {
			b.Fatal(string(e.Body))
		}
		for i := range dst {
			if fe := Validate(&dst[i], now, Window{}); fe != nil {
				b.Fatal(fe)
			}
		}
	}
	b.StopTimer()
	per := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/measurement")
	allocs := testing.AllocsPerRun(10, func() {
		if dst, e = decode(body, dst[:0]); e != nil {
			panic(string(e.Body))
		}
	})
	b.ReportMetric(allocs/float64(n), "allocs/measurement")
}

func BenchmarkDecodeLegacyJSON(b *testing.B) {
	benchDecode(b, legacyBody(benchSize), DecodeLegacyJSON)
}

func BenchmarkDecodeTagged(b *testing.B) {
	b.Run("top-level tags", func(b *testing.B) { benchDecode(b, taggedBody(benchSize, false), DecodeTagged) })
	b.Run("own tags", func(b *testing.B) { benchDecode(b, taggedBody(benchSize, true), DecodeTagged) })
}

func BenchmarkDecodeLegacyForm(b *testing.B) {
	pairs := make([]string, 0, benchSize)
	for i := range benchSize {
		pairs = append(pairs, fmt.Sprintf("gauges[%d][name]=app.metric.%d&gauges[%d][value]=%d.5&gauges[%d][source]=db-%d", i, i, i, i, i, i%4))
	}
	benchDecode(b, []byte(strings.Join(pairs, "&")), DecodeLegacyForm)
}
