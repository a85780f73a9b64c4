package benchkit

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// Units of the metrics the benchmarks report with b.ReportMetric.
const (
	NsPerGauge     = "ns/gauge"     // wall time of the timed flushes per gauge
	CPUNsPerGauge  = "cpu-ns/gauge" // user+sys CPU time of the process per gauge
	AllocsPerGauge = "allocs/gauge" // heap allocations of the process per gauge
	BytesPerGauge  = "B/gauge"      // heap bytes allocated by the process per gauge
	WirePerGauge   = "wire-B/gauge" // request body bytes on the wire per gauge
	GaugesPerOp    = "gauges/op"
	GaugesPerSec   = "gauges/s"
	PctTheoretical = "%theoretical" // of Concurrency × PerRequest / latency
)

// meter accumulates, over the timed sections of a benchmark, what the
// testing package does not expose to the benchmark itself: allocations and
// the process's CPU time.
type meter struct {
	b              *testing.B
	mallocs, bytes uint64
	cpu            time.Duration
	ms             runtime.MemStats
}

func (m *meter) start() {
	runtime.ReadMemStats(&m.ms)
	m.mallocs -= m.ms.Mallocs
	m.bytes -= m.ms.TotalAlloc
	m.cpu -= cpuTime()
	m.b.StartTimer()
}

func (m *meter) stop() {
	m.b.StopTimer()
	m.cpu += cpuTime()
	runtime.ReadMemStats(&m.ms)
	m.mallocs += m.ms.Mallocs
	m.bytes += m.ms.TotalAlloc
}

// report reports the per-gauge costs of b.N operations of gauges each.
func (m *meter) report(gauges int) {
	n := float64(m.b.N) * float64(gauges)
	m.b.ReportMetric(float64(gauges), GaugesPerOp)
	m.b.ReportMetric(float64(m.b.Elapsed().Nanoseconds())/n, NsPerGauge)
	m.b.ReportMetric(float64(m.cpu.Nanoseconds())/n, CPUNsPerGauge)
	m.b.ReportMetric(float64(m.mallocs)/n, AllocsPerGauge)
	m.b.ReportMetric(float64(m.bytes)/n, BytesPerGauge)
}

// failure keeps why the last benchmark failed: testing.Benchmark discards
// the output of the benchmarks it runs.
var failure struct {
	sync.Mutex
	err error
}

func fail(b *testing.B, err error) {
	b.Helper()
	failure.Lock()
	failure.err = err
	failure.Unlock()
	b.Fatal(err)
}

// Run is testing.Benchmark for the benchmarks of this package, which also
// tells why a benchmark failed.
func Run(f func(*testing.B)) (testing.BenchmarkResult, error) {
	failure.Lock()
	failure.err = nil
	failure.Unlock()
	r := testing.Benchmark(f)
	if r.N > 0 {
		return r, nil
	}
	failure.Lock()
	defer failure.Unlock()
	if failure.err != nil {
		return r, failure.err
	}
	return r, errors.New("benchmark failed")
}

// BenchWrite measures one Write of the workload (Telegraf's default batch
// of 1,000 metrics, 9,000 gauges) straight into the plugin, posting to a
// Sink: conversion, encoding and the HTTP client side, plus the sink's
// minimal request handling.
func BenchWrite(b *testing.B, p Plugin, load Load) {
	sink, out, ms, gauges := openOnSink(b, p, load)
	defer sink.Close()
	defer out.Close()

	// The first flush fills caches and connection pools, and shows that
	// everything is delivered.
	if err := out.Plugin.Write(ms); err != nil {
		fail(b, fmt.Errorf("%s: warm-up write: %w", p.Name, err))
	}
	if want := int64((gauges + p.PerRequest - 1) / p.PerRequest); sink.Requests() != want {
		fail(b, fmt.Errorf("%s: warm-up sent %d requests for %d gauges, want %d", p.Name, sink.Requests(), gauges, want))
	}
	sink.Reset()

	b.ReportAllocs()
	b.ResetTimer()
	m := meter{b: b}
	m.start()
	for i := 0; i < b.N; i++ {
		if err := out.Plugin.Write(ms); err != nil {
			fail(b, fmt.Errorf("%s: write: %w", p.Name, err))
		}
	}
	m.stop()
	m.report(gauges)
	b.ReportMetric(float64(sink.Bytes())/float64(b.N*gauges), WirePerGauge)
}

// openOnSink stops the timer and opens the plugin on a new Sink, with the
// workload it will write and its gauge count.
func openOnSink(b *testing.B, p Plugin, load Load) (*Sink, *Output, []telegraf.Metric, int) {
	b.StopTimer()
	sink := NewSink()
	ms := load.Metrics(Hosts, Now())
	out, err := Open(p, sink.URL(), len(ms))
	if err != nil {
		sink.Close()
		fail(b, err)
	}
	return sink, out, ms, Gauges(ms)
}

// BenchRunningOutput measures the workload going through Telegraf's
// models.RunningOutput as the agent drives it: AddMetricNoCopy of every
// metric, then Write. Each operation gets the metrics of the next
// collection interval, made with metric.New as inputs make them (fields in
// map order, every value boxed anew) while the timer is stopped, followed
// by a garbage collection so that collecting what their making left is not
// charged to the plugin; each plugin's own garbage is collected, when it
// calls for it, within the timed flushes.
func BenchRunningOutput(b *testing.B, p Plugin, load Load) {
	sink, out, ms, gauges := openOnSink(b, p, load)
	defer sink.Close()
	defer out.Close()
	if err := out.Flush(ms); err != nil {
		fail(b, fmt.Errorf("%s: warm-up flush: %w", p.Name, err))
	}
	sink.Reset()
	start := ms[0].Time()

	b.ReportAllocs()
	b.ResetTimer()
	m := meter{b: b}
	for i := 0; i < b.N; i++ {
		batch := load.Metrics(Hosts, start.Add(time.Duration(i+1)*Interval))
		runtime.GC() // the making of batch calls for one; it is not the plugin's
		m.start()
		err := out.Flush(batch)
		m.stop()
		if err != nil || out.BufferLength() != 0 {
			fail(b, fmt.Errorf("%s: flush left %d metrics buffered: %v", p.Name, out.BufferLength(), err))
		}
	}
	m.report(gauges)
	b.ReportMetric(float64(sink.Bytes())/float64(b.N*gauges), WirePerGauge)
}

// BenchThroughput measures delivery through a RunningOutput to the fake
// API answering every request after latency. Each operation is one Write
// of intervals collection intervals of the workload (metric_batch_size
// that large, so that request concurrency matters), and checks the fake
// stored every gauge. It reports gauges/s, the percentage of the plugin's
// theoretical Concurrency × PerRequest / latency, and the process's CPU
// time per gauge, which includes the fake's JSON decoding and validation:
// the fake runs in this process and competes with the plugin for the CPUs.
func BenchThroughput(b *testing.B, p Plugin, latency time.Duration, intervals int) {
	srv := fakelibrato.New(fakelibrato.Options{User: User, Token: Token, Latency: latency})
	defer srv.Close()
	throughput(b, p, latency, intervals, fakeTarget{srv})
}

// BenchThroughputSink is BenchThroughput against a Sink that answers each
// request latency after reading it and does nothing else, so that the API
// side costs next to no CPU. It checks the number of requests, not the
// gauges.
func BenchThroughputSink(b *testing.B, p Plugin, latency time.Duration, intervals int) {
	sink := NewSlowSink(latency)
	defer sink.Close()
	throughput(b, p, latency, intervals, sinkTarget{sink})
}

// target is the API of a throughput run.
type target interface {
	URL() string
	Reset()
	// check tells whether the gauges of one flush all arrived.
	check(p Plugin, gauges int) error
}

type fakeTarget struct{ *fakelibrato.Server }

func (f fakeTarget) URL() string { return f.LegacyURL() }

func (f fakeTarget) check(p Plugin, gauges int) error {
	if got := len(f.Gauges()); got != gauges {
		return fmt.Errorf("%s: the fake stored %d gauges, want %d", p.Name, got, gauges)
	}
	return nil
}

type sinkTarget struct{ *Sink }

func (s sinkTarget) check(p Plugin, gauges int) error {
	if want := int64((gauges + p.PerRequest - 1) / p.PerRequest); s.Requests() != want {
		return fmt.Errorf("%s: the sink got %d requests for %d gauges, want %d", p.Name, s.Requests(), gauges, want)
	}
	return nil
}

func throughput(b *testing.B, p Plugin, latency time.Duration, intervals int, api target) {
	b.StopTimer()
	start := Now()
	ms := Intervals(Hosts, intervals, start)
	gauges := Gauges(ms)
	out, err := Open(p, api.URL(), len(ms))
	if err != nil {
		fail(b, err)
	}
	defer out.Close()
	// Warm up with a flush of the same size: connections, caches and buffers
	// are then as in an agent's steady state.
	if err := out.Flush(Shift(ms, -time.Duration(intervals)*Interval)); err != nil {
		fail(b, fmt.Errorf("%s: warm-up flush: %w", p.Name, err))
	}

	b.ResetTimer()
	m := meter{b: b}
	for i := 0; i < b.N; i++ {
		batch := Shift(ms, time.Duration((i+1)*intervals)*Interval)
		api.Reset()
		m.start()
		err := out.Flush(batch)
		m.stop()
		if err != nil {
			fail(b, fmt.Errorf("%s: flush: %w", p.Name, err))
		}
		if err := api.check(p, gauges); err != nil {
			fail(b, err)
		}
	}
	n := float64(b.N) * float64(gauges)
	rate := n / b.Elapsed().Seconds()
	theoretical := float64(p.Concurrency*p.PerRequest) / latency.Seconds()
	b.ReportMetric(float64(gauges), GaugesPerOp)
	b.ReportMetric(rate, GaugesPerSec)
	b.ReportMetric(100*rate/theoretical, PctTheoretical)
	b.ReportMetric(float64(m.cpu.Nanoseconds())/n, CPUNsPerGauge)
}

// HeapAfterFlushes runs flushes flushes of the workload (fresh metrics of
// successive intervals) through a RunningOutput into a Sink, and returns
// HeapInuse after a garbage collection following each flush.
func HeapAfterFlushes(p Plugin, flushes int) ([]uint64, error) {
	sink := NewSink()
	defer sink.Close()
	ms := Workload(Hosts, Now())
	out, err := Open(p, sink.URL(), len(ms))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	heap := make([]uint64, flushes)
	var st runtime.MemStats
	for i := range heap {
		if err := out.Flush(Shift(ms, time.Duration(i)*Interval)); err != nil {
			return nil, fmt.Errorf("%s: flush %d: %w", p.Name, i+1, err)
		}
		runtime.GC()
		runtime.ReadMemStats(&st)
		heap[i] = st.HeapInuse
	}
	return heap, nil
}

// HeldAfterFlush opens p on a Sink inside a RunningOutput with
// metric_batch_size = n, writes one flush of n metrics (n/1,000 successive
// intervals of load) and returns how much more heap is live after it and a
// garbage collection than after Open: what the plugin keeps of a huge flush
// (caches, buffers, idle connections).
func HeldAfterFlush(p Plugin, load Load, n int) (int64, error) {
	sink := NewSink()
	defer sink.Close()
	out, err := Open(p, sink.URL(), n)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	before := liveHeap()
	if err := flushIntervals(out, load, n, Now()); err != nil {
		return 0, fmt.Errorf("%s: flush of %d metrics: %w", p.Name, n, err)
	}
	after := liveHeap()
	runtime.KeepAlive(out)
	return int64(after) - int64(before), nil
}

// TelegrafOverhead is BenchRunningOutput's ns/gauge for an output that does
// nothing (Nop), over flushes flushes: Telegraf's own cost per gauge, which
// both plugins pay there. It is measured without testing.Benchmark, whose
// one-second target would make thousands of flushes of this almost free
// output, each with its metrics made and collected untimed.
func TelegrafOverhead(load Load, flushes int) (float64, error) {
	start := Now()
	out, err := Open(Nop(), "", len(load.Metrics(Hosts, start)))
	if err != nil {
		return 0, err
	}
	defer out.Close()
	var timed time.Duration
	gauges := 0
	for i := range flushes {
		batch := load.Metrics(Hosts, start.Add(time.Duration(i)*Interval))
		gauges += Gauges(batch)
		runtime.GC()
		t := time.Now()
		err := out.Flush(batch)
		timed += time.Since(t)
		if err != nil {
			return 0, err
		}
	}
	return float64(timed.Nanoseconds()) / float64(gauges), nil
}

// flushIntervals hands n metrics of successive intervals of load to out
// and writes them in one flush; none of them is reachable afterwards.
func flushIntervals(out *Output, load Load, n int, start time.Time) error {
	for i := 0; out.BufferLength() < n; i++ {
		for _, m := range load.Metrics(Hosts, start.Add(time.Duration(i)*Interval)) {
			out.AddMetricNoCopy(m)
		}
	}
	return out.Write()
}

func liveHeap() uint64 {
	runtime.GC()
	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	return st.HeapAlloc
}
