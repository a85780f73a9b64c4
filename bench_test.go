package librato

import (
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"

	"github.com/seed-d22a899f/librato/internal/benchkit"
)

// The benchmarks compare this plugin with Telegraf's built-in one on the
// shared workload of internal/benchkit (100 hosts: 1,000 metrics, 9,000
// gauges per collection interval); go run ./cmd/librato-bench runs the same
// code and prints the comparison against the performance targets.
//
//	go test -run '^$' -bench . -benchmem .

// benchOurs is this plugin at its defaults, posting to the given URL.
func benchOurs(configure ...func(*Librato)) benchkit.Plugin {
	d := newLibrato()
	return benchkit.Plugin{
		Name: "ours",
		New: func(url string) telegraf.Output {
			l := newLibrato()
			l.APIURL = url
			l.APIUser = benchkit.Secret(benchkit.User)
			l.APIToken = benchkit.Secret(benchkit.Token)
			for _, f := range configure {
				f(l)
			}
			return l
		},
		Concurrency: d.ConcurrentWrites,
		PerRequest:  d.MeasurementsPerRequest,
	}
}

// benchLoads are the two workloads of internal/benchkit: the standard
// one and the fleet of cpu, mem, disk and net with bool and string fields.
var benchLoads = []benchkit.Load{benchkit.Standard, benchkit.FleetLoad}

func benchPlugins() []benchkit.Plugin {
	return []benchkit.Plugin{benchkit.Builtin(), benchOurs()}
}

func pluginKey(p benchkit.Plugin) string {
	if p.Name == "built-in" {
		return "builtin"
	}
	return p.Name
}

// BenchmarkWrite is one Write of 1,000 metrics straight into the plugin,
// posting to a discarding in-process server.
func BenchmarkWrite(b *testing.B) {
	for _, load := range benchLoads {
		for _, p := range benchPlugins() {
			b.Run(load.Name+"/"+pluginKey(p), func(b *testing.B) { benchkit.BenchWrite(b, p, load) })
		}
	}
}

// BenchmarkRunningOutput is the same flush driven by Telegraf's
// models.RunningOutput: AddMetricNoCopy of fresh metrics, then Write.
func BenchmarkRunningOutput(b *testing.B) {
	for _, load := range benchLoads {
		for _, p := range benchPlugins() {
			b.Run(load.Name+"/"+pluginKey(p), func(b *testing.B) { benchkit.BenchRunningOutput(b, p, load) })
		}
	}
}

// BenchmarkThroughput delivers 10,000 metrics (90,000 gauges) per Write to
// the fake API answering after 50 ms.
func BenchmarkThroughput(b *testing.B) {
	for _, p := range benchPlugins() {
		b.Run(pluginKey(p), func(b *testing.B) { benchkit.BenchThroughput(b, p, 50*time.Millisecond, 10) })
	}
}

// BenchmarkThroughputSink is BenchmarkThroughput against a server that
// only waits 50 ms per request, so the API's own CPU does not compete with
// the plugin's.
func BenchmarkThroughputSink(b *testing.B) {
	for _, p := range benchPlugins() {
		b.Run(pluginKey(p), func(b *testing.B) { benchkit.BenchThroughputSink(b, p, 50*time.Millisecond, 10) })
	}
}

// BenchmarkGzip is BenchmarkWrite of this plugin with and without
// content_encoding = "gzip"; wire-B/gauge is what goes over the network.
func BenchmarkGzip(b *testing.B) {
	for _, enc := range []string{"identity", "gzip"} {
		p := benchOurs(func(l *Librato) { l.ContentEncoding = enc })
		b.Run(enc, func(b *testing.B) { benchkit.BenchWrite(b, p, benchkit.Standard) })
	}
}

// TestBenchkitDefaults keeps the defaults cmd/librato-bench builds this
// plugin with (it cannot call newLibrato) in step with newLibrato.
func TestBenchkitDefaults(t *testing.T) {
	l := newLibrato()
	checks := []struct {
		name      string
		got, want any
	}{
		{"measurements_per_request", l.MeasurementsPerRequest, benchkit.DefaultMeasurementsPerRequest},
		{"concurrent_writes", l.ConcurrentWrites, benchkit.DefaultConcurrentWrites},
		{"timeout", l.Timeout, config.Duration(benchkit.DefaultTimeout)},
		{"retry_budget", l.RetryBudget, config.Duration(benchkit.DefaultRetryBudget)},
		{"max_retry_after", l.MaxRetryAfter, config.Duration(benchkit.DefaultMaxRetryAfter)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: newLibrato has %v, benchkit.Default* %v", c.name, c.got, c.want)
		}
	}
}

// BenchmarkConvert is the part of a Write before delivery: conversion and
// the screens, on 1,000-metric batches of the workloads (the fleet also at
// 1,000 hosts, whose caches hold ten times the series), cycling through
// ten collection intervals as a running agent does.
func BenchmarkConvert(b *testing.B) {
	cases := []struct {
		name  string
		load  benchkit.Load
		hosts int
	}{
		{"standard", benchkit.Standard, benchkit.Hosts},
		{"fleet", benchkit.FleetLoad, benchkit.Hosts},
		{"fleet-1000-hosts", benchkit.FleetLoad, 10 * benchkit.Hosts},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var batches [][]telegraf.Metric
			at := benchkit.Now()
			for range 10 {
				ms := tc.load.Metrics(tc.hosts, at)
				at = at.Add(benchkit.Interval)
				for len(ms) > 0 {
					n := min(1000, len(ms))
					batches, ms = append(batches, ms[:n]), ms[n:]
				}
			}
			info := telegraf.Info // as the agent logs by default: no debug lines built
			l := newLibrato()
			l.Log = testutil.Logger{Quiet: true, LogLevel: &info}
			l.APIUser, l.APIToken = benchkit.Secret(benchkit.User), benchkit.Secret(benchkit.Token)
			if err := l.Init(); err != nil {
				b.Fatal(err)
			}
			conv := l.conv[index(false)]
			gauges := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				batch := batches[i%len(batches)]
				pts := l.screen(batch, conv.convert(batch), conv, false)
				gauges += len(pts)
				l.settleScreens(true)
				conv.release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(gauges), "ns/gauge")
		})
	}
}
