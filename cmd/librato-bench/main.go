// Command librato-bench compares this Librato output with Telegraf's
// built-in one and prints a markdown table of the results against the
// performance targets:
//
//	go run ./cmd/librato-bench [-strict]
//
// CPU is measured as CPU: each plugin runs in a process of its own (this
// binary run again), loaded through Telegraf's config loader and written
// through models.RunningOutput, against the fake API in a third process;
// the child counts its own user+system time (getrusage) around each
// WriteBatch. A floor — a minimal HTTP client posting the same bodies with
// the same concurrency, plus encoding them on its own — shows how close to
// the cost of HTTP the plugin is. The heap rows run in this process. With
// -strict it exits 1 when a target is missed.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/outputs"
	builtin "github.com/influxdata/telegraf/plugins/outputs/librato"

	"github.com/seed-d22a899f/librato"
	"github.com/seed-d22a899f/librato/internal/benchkit"
)

// Targets from the issues, at default settings.
const (
	maxCPURatio      = 0.10 // CPU per batch ≤ 1/10 of the built-in, median and total
	maxFloorRatio    = 2.0  // CPU per gauge ≤ 2× the floor
	maxAllocsPerG    = 1.0
	maxBytesPerG     = 150.0
	minSpeedup       = 8.0  // throughput ≥ 8× the built-in
	minPctTheory     = 90.0 // ≥ 90% of concurrent_writes × measurements_per_request / latency
	maxHeapGrowthPct = 10.0 // "flat": HeapInuse after the last flush within 10% of the 10th
	// heldBudget is what the README documents the plugin may hold between
	// flushes at default settings: two caches of 16 MiB, 1.5 MiB of
	// conversion buffers, 10 pooled request buffers of 256 KiB.
	heldBudget = 36 << 20
	batchSize  = 1000 // Telegraf's default metric_batch_size
)

// creators are the plugins a child can run, registered as outputs.librato
// there. "ours" is built from its exported fields with the defaults of
// sample.conf (its constructor is not exported); the root package's tests
// keep benchkit's defaults in step with it.
var creators = map[string]outputs.Creator{
	"built-in": func() telegraf.Output { return builtin.NewLibrato("https://metrics-api.librato.com/v1/metrics") },
	"ours": func() telegraf.Output {
		return &librato.Librato{
			Timeout:                config.Duration(benchkit.DefaultTimeout),
			RetryBudget:            config.Duration(benchkit.DefaultRetryBudget),
			MaxRetryAfter:          config.Duration(benchkit.DefaultMaxRetryAfter),
			MeasurementsPerRequest: benchkit.DefaultMeasurementsPerRequest,
			ConcurrentWrites:       benchkit.DefaultConcurrentWrites,
		}
	},
	"telegraf only": func() telegraf.Output { return benchkit.Nop().New("") },
}

// workload is one CPU comparison: a workload of hosts hosts, batches
// batches of 1,000 metrics.
type workload struct {
	name, load     string
	hosts, batches int
}

func main() {
	child := flag.String(benchkit.ChildFlag, "", "internal: run this job (JSON) as a child process")
	api := flag.String(benchkit.APIFlag, "", "internal: serve the fake API with this latency")
	strict := flag.Bool("strict", false, "exit with status 1 if a target is missed")
	latency := flag.Duration("latency", 50*time.Millisecond, "fake API latency per request in the throughput run")
	intervals := flag.Int("intervals", 10, "collection intervals (1,000 metrics each) per Write in the throughput run")
	batches := flag.Int("batches", 40, "batches of the 100-host workloads (the 1,000-host one runs 5×), per round")
	rounds := flag.Int("rounds", 3, "runs of each plugin per workload, interleaved; medians are over all of their batches")
	flushes := flag.Int("flushes", 50, "flushes in the heap run; the heap is compared after flush 10 and the last")
	profiles := flag.String("cpuprofile-dir", "", "write a CPU profile of the children of ours and of the floor to this directory (pprof -tagfocus=phase=write keeps the timed sections)")
	huge := flag.Int("huge", 200_000, "metrics (a multiple of 1,000) in the flush after which the heap held is measured")
	flag.Parse()
	switch {
	case *child != "":
		if err := benchkit.ChildMain(*child, creators); err != nil {
			os.Exit(1)
		}
		return
	case *api != "":
		if err := benchkit.ServeAPI(*api); err != nil {
			fmt.Fprintln(os.Stderr, "librato-bench: fake API:", err)
			os.Exit(1)
		}
		return
	}
	opts := options{strict: *strict, latency: *latency, intervals: *intervals, batches: *batches, rounds: *rounds,
		flushes: *flushes, huge: *huge, profiles: *profiles}
	if err := run(opts); err != nil {
		fmt.Fprintf(os.Stderr, "librato-bench: %v\n", err)
		os.Exit(1)
	}
}

// errMissed: -strict and a target was missed.
var errMissed = errors.New("a target was missed")

// options are the command's flags.
type options struct {
	strict                            bool
	latency                           time.Duration
	intervals, batches, flushes, huge int
	rounds                            int
	profiles                          string
}

func run(opts options) error {
	strict, latency, intervals, batches, flushes := opts.strict, opts.latency, opts.intervals, opts.batches, opts.flushes
	huge, profiles, rounds := opts.huge, opts.profiles, opts.rounds
	if flushes < 11 || intervals < 1 || latency <= 0 || batches < 2 || rounds < 1 || huge < 1000 || huge%1000 != 0 {
		return errors.New("need -flushes ≥ 11, -intervals ≥ 1, -latency > 0, -batches ≥ 2, -rounds ≥ 1, -huge a multiple of 1,000")
	}
	started := time.Now()
	r := runner{log: os.Stderr}
	apis, err := benchkit.StartAPI(latency, os.Stderr)
	if err != nil {
		return err
	}
	defer apis.Close()
	r.apis = apis

	workloads := []workload{
		{"standard", benchkit.Standard.Name, benchkit.Hosts, batches},
		{"fleet", benchkit.FleetLoad.Name, benchkit.Hosts, batches},
		{"fleet, 1,000 hosts", benchkit.FleetLoad.Name, 10 * benchkit.Hosts, 5 * batches},
	}
	plugins := []string{"built-in", "ours", benchkit.FloorPlugin, "telegraf only"}
	runs := make([]map[string]benchkit.JobResult, len(workloads))
	for i, w := range workloads {
		// Rounds interleave the plugins, each round in another order, so
		// that the shared machine's drift falls on all of them alike.
		pooled := make(map[string][]benchkit.JobResult)
		for round := range rounds {
			for k := range plugins {
				p := plugins[(k+round)%len(plugins)]
				prof := ""
				if round == 0 {
					prof = profile(profiles, w.name, p)
				}
				pooled[p] = append(pooled[p], r.job(w.name, benchkit.Job{Plugin: p, Load: w.load, Hosts: w.hosts, Batches: w.batches,
					BatchSize: batchSize, URL: apis.Fast, SendsNothing: p == "telegraf only", CPUProfile: prof}))
			}
		}
		runs[i] = make(map[string]benchkit.JobResult)
		for p, rs := range pooled {
			runs[i][p] = benchkit.Pool(rs)
		}
	}
	gz := r.job("standard", benchkit.Job{Plugin: "ours", Load: benchkit.Standard.Name, Hosts: benchkit.Hosts,
		Batches: batches, BatchSize: batchSize, URL: apis.Fast, Extra: `  content_encoding = "gzip"`})
	// The throughput runs write intervals collections per WriteBatch; the
	// first WriteBatch warms connections and caches and is not counted.
	perWrite := intervals * benchkit.Hosts * benchkit.MetricsPerHost
	tpB := r.job("throughput", benchkit.Job{Plugin: "built-in", Load: benchkit.Standard.Name, Hosts: benchkit.Hosts,
		Batches: 2, BatchSize: perWrite, URL: apis.Slow})
	tpO := r.job("throughput", benchkit.Job{Plugin: "ours", Load: benchkit.Standard.Name, Hosts: benchkit.Hosts,
		Batches: 6, BatchSize: perWrite, URL: apis.Slow})

	b, o := benchkit.Builtin(), ours()
	heapB := r.heap(b, flushes)
	heapO := r.heap(o, flushes)
	loads := []benchkit.Load{benchkit.Standard, benchkit.FleetLoad}
	heldB := make([]int64, len(loads))
	heldO := make([]int64, len(loads))
	for i, load := range loads {
		heldB[i] = r.held(b, load, huge)
		heldO[i] = r.held(o, load, huge)
	}
	if r.err != nil {
		return r.err
	}

	w := bufio.NewWriter(os.Stdout)
	printMachine(w, runs[0]["ours"])
	fmt.Fprintf(w, "Workloads, 1,000 metrics per WriteBatch (metric_batch_size = %d), template \"host\":\n"+
		"- standard: %d hosts; cpu, mem, disk, net and diskio with host, region, dc and per-input tags; %.0f gauges per batch;\n"+
		"- fleet: %d hosts; cpu, mem, disk and net with host and per-input tags only, "+
		"uint64, int64, float and bool fields and one string field per disk metric; %.0f gauges per batch;\n"+
		"- fleet, 1,000 hosts: the same, 10 batches per collection interval.\n"+
		"Throughput: %d metrics (%.0f gauges) per WriteBatch to the fake API answering after %s.\n\n",
		batchSize, benchkit.Hosts, gaugesPerBatch(runs[0]["ours"]), benchkit.Hosts, gaugesPerBatch(runs[1]["ours"]),
		perWrite, gaugesPerBatch(tpO), latency)

	t := table{}
	for i, wl := range workloads {
		t.workload = fmt.Sprintf("%s (%d × %d batches)", wl.name, rounds, wl.batches)
		t.cpu(runs[i])
	}
	t.workload = "standard"
	t.throughput(tpB, tpO, latency)
	t.gzip(runs[0]["ours"], gz)
	t.bodies(runs[0][benchkit.FloorPlugin])
	t.heap(heapB, heapO)
	for i, load := range loads {
		t.workload = load.Name
		t.held(huge, heldB[i], heldO[i])
	}
	t.write(w)

	fmt.Fprintf(w, "\nNotes:\n"+
		"- CPU is the user+system time (getrusage RUSAGE_SELF) of the plugin's own process around each WriteBatch: conversion, encoding, "+
		"the HTTP client and the runtime's work (GC, scheduler) while it runs. The fake API (JSON decoding and validation) runs in another process "+
		"and is not counted; wall clock is labelled as such and includes waiting for it.\n"+
		"- Each plugin is loaded from an [[outputs.librato]] table by Telegraf's config loader (built-in: Telegraf's outputs.librato; ours: this module; "+
		"both at their defaults) and written through models.RunningOutput: AddMetricNoCopy of a batch, then WriteBatch. "+
		"Metrics are made 10 batches at a time "+
		"before the timed sections, followed by runtime.GC(), so making them is not charged; collecting each plugin's own garbage is, when it calls for it.\n"+
		"- Each plugin runs %d times per workload, in its own process each time, the plugins taking turns in a different order each round, "+
		"so that the shared machine's drift falls on all of them alike. Medians are over the batches of all rounds, the first after each Connect "+
		"included; a total is the mean of the rounds' totals; the first batch after Connect is the median of the rounds' first.\n"+
		"- Floor: the bodies ours sent (captured in the floor's process, untimed) posted again by a minimal net/http client, %d at a time, "+
		"timed like a WriteBatch (HTTP alone), plus the CPU of encoding those gauges with the plugin's encoder on its own. "+
		"ours/floor compares ns per gauge of the median batch.\n"+
		"- telegraf only: a no-op output through the same RunningOutput, Telegraf's own cost per gauge, which both plugins pay.\n"+
		"- allocs and bytes are the child process's heap allocations (runtime.MemStats) over the timed WriteBatches, per gauge.\n"+
		"- Throughput: %d metrics per WriteBatch (metric_batch_size = %d) to the fake API answering each request after %s, in its process; "+
		"theoretical = concurrent_writes × measurements_per_request / latency (built-in: 1 × 300, ours: %d × %d); the first WriteBatch is a warm-up.\n"+
		"- Heap rows run in this process against an in-process sink: HeapInuse after runtime.GC() following flush 10 and flush %d; "+
		"live heap after one Write of %d metrics minus after Connect.\n",
		rounds, benchkit.DefaultConcurrentWrites, perWrite, perWrite, latency, benchkit.DefaultConcurrentWrites, benchkit.DefaultMeasurementsPerRequest,
		flushes, huge)
	fmt.Fprintf(w, "\nlibrato-bench took %s.\n", time.Since(started).Round(time.Second))
	if err := w.Flush(); err != nil {
		return err
	}
	if strict && t.failed {
		return errMissed
	}
	return nil
}

// profile is the CPU profile of ours or the floor in workload w, if dir is
// set.
func profile(dir, w, plugin string) string {
	if dir == "" || plugin != "ours" && plugin != benchkit.FloorPlugin {
		return ""
	}
	name := strings.NewReplacer(" ", "", ",", "").Replace(w)
	if plugin == benchkit.FloorPlugin {
		name += "-floor"
	}
	return filepath.Join(dir, name+".prof")
}

// ours is this plugin at its defaults for the in-process heap rows.
func ours() benchkit.Plugin {
	return benchkit.Plugin{
		Name: "ours",
		New: func(url string) telegraf.Output {
			l := creators["ours"]().(*librato.Librato)
			l.APIURL = url
			l.APIUser = benchkit.Secret(benchkit.User)
			l.APIToken = benchkit.Secret(benchkit.Token)
			return l
		},
		Concurrency: benchkit.DefaultConcurrentWrites,
		PerRequest:  benchkit.DefaultMeasurementsPerRequest,
	}
}

func gaugesPerBatch(r benchkit.JobResult) float64 {
	if len(r.Batches) == 0 {
		return 0
	}
	return float64(r.Batches[0].Gauges)
}

// runner runs the jobs in order and keeps the first error; after an error
// it runs nothing more.
type runner struct {
	log  io.Writer
	apis *benchkit.APIs
	err  error
}

func (r *runner) job(name string, job benchkit.Job) benchkit.JobResult {
	if r.err != nil {
		return benchkit.JobResult{}
	}
	job.Control = r.apis.Control
	start := time.Now()
	fmt.Fprintf(r.log, "%s/%s (%d × WriteBatch of %d metrics, own process) ... ", name, job.Plugin, job.Batches, job.BatchSize)
	res, err := benchkit.RunJob(job, r.log)
	if err != nil {
		fmt.Fprintln(r.log, "FAILED")
		r.err = err
		return res
	}
	fmt.Fprintf(r.log, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return res
}

func (r *runner) heap(p benchkit.Plugin, flushes int) []uint64 {
	if r.err != nil {
		return nil
	}
	start := time.Now()
	fmt.Fprintf(r.log, "Heap/%s (%d flushes) ... ", p.Name, flushes)
	h, err := benchkit.HeapAfterFlushes(p, flushes)
	if err != nil {
		fmt.Fprintln(r.log, "FAILED")
		r.err = err
		return nil
	}
	fmt.Fprintf(r.log, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return h
}

func (r *runner) held(p benchkit.Plugin, load benchkit.Load, n int) int64 {
	if r.err != nil {
		return 0
	}
	start := time.Now()
	fmt.Fprintf(r.log, "%s/Held/%s (one flush of %d metrics) ... ", load.Name, p.Name, n)
	h, err := benchkit.HeldAfterFlush(p, load, n)
	if err != nil {
		fmt.Fprintln(r.log, "FAILED")
		r.err = err
		return 0
	}
	fmt.Fprintf(r.log, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return h
}

func printMachine(w io.Writer, child benchkit.JobResult) {
	fmt.Fprintf(w, "Machine: %s/%s, %d CPUs (children: GOMAXPROCS %d), %s, %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), child.GOMAXPROCS, cpuModel(), runtime.Version())
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(w, "Load average at the end: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
}

// cpuModel is the first "model name" of /proc/cpuinfo, where there is one.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if key, value, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown CPU"
}
