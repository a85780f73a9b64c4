package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/seed-d22a899f/librato/internal/benchkit"
)

// summary is one child's run, per batch and per gauge.
type summary struct {
	batches, gauges          int
	median, total, first     time.Duration // CPU (getrusage)
	medianNs, totalNs        float64       // CPU per gauge: the median batch's, and over all batches
	wallMedian               time.Duration
	allocsPerG, bytesPerG    float64
	encodeNs                 float64 // the floor's encoding alone, per gauge
	bodyPerG, gzipBodyPerG   float64 // the floor's: request body bytes per gauge
	wallTotal, wallAfterWarm time.Duration
	gaugesAfterWarm          int
}

// summarize reports a pooled result's medians over all its batches, and
// its total and first batch per round (the mean total, the median first).
func summarize(r benchkit.JobResult) summary {
	s := summary{batches: len(r.Batches)}
	if s.batches == 0 {
		return s
	}
	rounds := max(r.Rounds, 1)
	firsts := make([]float64, 0, rounds)
	for i := range rounds {
		firsts = append(firsts, float64(r.Batches[i*len(r.Batches)/rounds].CPU))
	}
	cpus := make([]float64, 0, len(r.Batches))
	perG := make([]float64, 0, len(r.Batches))
	walls := make([]float64, 0, len(r.Batches))
	var mallocs, bytes uint64
	for i, b := range r.Batches {
		s.gauges += b.Gauges
		s.total += b.CPU
		s.wallTotal += b.Wall
		if i > 0 {
			s.wallAfterWarm += b.Wall
			s.gaugesAfterWarm += b.Gauges
		}
		mallocs += b.Mallocs
		bytes += b.Bytes
		cpus = append(cpus, float64(b.CPU))
		perG = append(perG, float64(b.CPU)/float64(b.Gauges))
		walls = append(walls, float64(b.Wall))
	}
	s.median = time.Duration(benchkit.Median(cpus))
	s.medianNs = benchkit.Median(perG)
	s.totalNs = float64(s.total) / float64(s.gauges)
	s.wallMedian = time.Duration(benchkit.Median(walls))
	s.allocsPerG = float64(mallocs) / float64(s.gauges)
	s.bytesPerG = float64(bytes) / float64(s.gauges)
	if r.EncodeGauges > 0 {
		s.encodeNs = float64(r.EncodeCPU) / float64(r.EncodeGauges)
		s.bodyPerG = float64(r.BodyBytes) / float64(r.EncodeGauges)
		s.gzipBodyPerG = float64(r.GzipBytes) / float64(r.EncodeGauges)
	}
	s.batches /= rounds
	s.gauges /= rounds
	s.total /= time.Duration(rounds)
	s.first = time.Duration(benchkit.Median(firsts))
	return s
}

// table is the result table. workload is the workload of the rows added
// next.
type table struct {
	workload string
	rows     [][8]string
	failed   bool
}

// cells are a row's built-in | ours | floor | ratio columns.
type cells [4]string

// add adds a row: metric | cells | target | result; pass nil means the row
// is not judged.
func (t *table) add(metric string, c cells, target string, pass *bool) {
	result := "info"
	if pass != nil {
		result = "PASS"
		if !*pass {
			result = "FAIL"
			t.failed = true
		}
	}
	t.rows = append(t.rows, [8]string{t.workload, metric, c[0], c[1], c[2], c[3], target, result})
}

func judged(ok bool) *bool { return &ok }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// perBatch shows a CPU time per batch with its share per gauge.
func perBatch(d time.Duration, gauges float64) string {
	return fmt.Sprintf("%s (%s ns/gauge)", ms(d), thousands(float64(d)/gauges))
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cpu adds the CPU, floor and allocation rows of one workload.
func (t *table) cpu(runs map[string]benchkit.JobResult) {
	b, o := summarize(runs["built-in"]), summarize(runs["ours"])
	f, nop := summarize(runs[benchkit.FloorPlugin]), summarize(runs["telegraf only"])
	gpb := float64(o.gauges) / float64(o.batches)
	floorMedian := f.median + time.Duration(f.encodeNs*gpb)
	floorTotal := f.total + time.Duration(f.encodeNs*float64(f.gauges))
	floorNs := f.medianNs + f.encodeNs

	r := float64(o.median) / float64(b.median)
	t.add("CPU per batch, median (getrusage user+sys of the plugin's process)", cells{
		perBatch(b.median, float64(b.gauges)/float64(b.batches)),
		perBatch(o.median, gpb),
		perBatch(floorMedian, gpb),
		fmt.Sprintf("%.3f× built-in", r),
	}, fmt.Sprintf("≤ %.2f× built-in", maxCPURatio), judged(r <= maxCPURatio))
	r = float64(o.total) / float64(b.total)
	t.add(fmt.Sprintf("CPU, total of %d batches (getrusage; the mean over the rounds)", o.batches), cells{
		perBatch(b.total, float64(b.gauges)),
		perBatch(o.total, float64(o.gauges)),
		perBatch(floorTotal, float64(f.gauges)),
		fmt.Sprintf("%.3f× built-in", r),
	}, fmt.Sprintf("≤ %.2f× built-in", maxCPURatio), judged(r <= maxCPURatio))
	r = o.medianNs / floorNs
	t.add("CPU per gauge against the floor, median batch (ns; floor = HTTP alone + encoding alone)", cells{
		thousands(b.medianNs),
		thousands(o.medianNs),
		fmt.Sprintf("%s (HTTP %s + encoding %s)", thousands(floorNs), thousands(f.medianNs), thousands(f.encodeNs)),
		fmt.Sprintf("%.2f× floor", r),
	}, fmt.Sprintf("≤ %.0f× floor", maxFloorRatio), judged(r <= maxFloorRatio))
	t.add("CPU, first batch after Connect (getrusage)", cells{
		ms(b.first),
		ms(o.first),
		ms(f.first),
		fmt.Sprintf("%.3f× built-in", float64(o.first)/float64(b.first)),
	}, "—", nil)
	t.add("wall clock per batch, median (includes waiting for the API)", cells{
		ms(b.wallMedian),
		ms(o.wallMedian),
		ms(f.wallMedian),
		fmt.Sprintf("%.3f× built-in", float64(o.wallMedian)/float64(b.wallMedian)),
	}, "—", nil)
	t.add("of which Telegraf's own: a no-op output via RunningOutput, CPU per gauge (ns, median batch)", cells{
		thousands(nop.medianNs),
		thousands(nop.medianNs),
		"—",
		"—",
	}, "—", nil)
	r = o.allocsPerG / b.allocsPerG
	t.add("allocations per gauge (process, over the WriteBatches)", cells{
		fmt.Sprintf("%.2f", b.allocsPerG),
		fmt.Sprintf("%.2f", o.allocsPerG),
		fmt.Sprintf("%.2f", f.allocsPerG),
		fmt.Sprintf("%.3f× built-in", r),
	}, fmt.Sprintf("≤ %.0f", maxAllocsPerG), judged(o.allocsPerG <= maxAllocsPerG))
	r = o.bytesPerG / b.bytesPerG
	t.add("heap bytes allocated per gauge", cells{
		fmt.Sprintf("%.0f B", b.bytesPerG),
		fmt.Sprintf("%.0f B", o.bytesPerG),
		fmt.Sprintf("%.0f B", f.bytesPerG),
		fmt.Sprintf("%.3f× built-in", r),
	}, fmt.Sprintf("≤ %.0f B", maxBytesPerG), judged(o.bytesPerG <= maxBytesPerG))
}

// throughput adds the gauges/s and share-of-theoretical rows; the first
// WriteBatch of each run is a warm-up.
func (t *table) throughput(b, o benchkit.JobResult, latency time.Duration) {
	sb, so := summarize(b), summarize(o)
	rate := func(s summary) float64 { return float64(s.gaugesAfterWarm) / s.wallAfterWarm.Seconds() }
	speedup := rate(so) / rate(sb)
	t.add(fmt.Sprintf("throughput, fake API @ %s per request (gauges/s, wall clock)", latency), cells{
		thousands(rate(sb)),
		thousands(rate(so)),
		"—",
		fmt.Sprintf("%.1f× built-in", speedup),
	}, fmt.Sprintf("≥ %.0f× built-in", minSpeedup), judged(speedup >= minSpeedup))
	theory := func(conc, per int) float64 { return float64(conc*per) / latency.Seconds() }
	pb := 100 * rate(sb) / theory(1, 300)
	po := 100 * rate(so) / theory(benchkit.DefaultConcurrentWrites, benchkit.DefaultMeasurementsPerRequest)
	t.add("share of concurrent_writes × measurements_per_request / latency", cells{
		fmt.Sprintf("%.1f%%", pb),
		fmt.Sprintf("%.1f%%", po),
		"—",
		"—",
	}, fmt.Sprintf("≥ %.0f%%", minPctTheory), judged(po >= minPctTheory))
	t.add("CPU per gauge in the throughput run (ns, getrusage, all batches)", cells{
		thousands(sb.totalNs),
		thousands(so.totalNs),
		"—",
		fmt.Sprintf("%.3f× built-in", so.totalNs/sb.totalNs),
	}, "—", nil)
}

// gzip compares content_encoding = "gzip" with the default.
func (t *table) gzip(identity, gz benchkit.JobResult) {
	si, sg := summarize(identity), summarize(gz)
	t.add(`CPU per gauge, content_encoding = "gzip" (ns, median batch)`, cells{
		"n/a",
		fmt.Sprintf("%s (identity %s)", thousands(sg.medianNs), thousands(si.medianNs)),
		"—",
		fmt.Sprintf("%.2f× identity", sg.medianNs/si.medianNs),
	}, "—", nil)
}

// bodies shows the request body sizes the floor measured.
func (t *table) bodies(floor benchkit.JobResult) {
	f := summarize(floor)
	t.add("request body bytes per gauge, identity → gzip", cells{
		"—",
		fmt.Sprintf("%.1f → %.1f", f.bodyPerG, f.gzipBodyPerG),
		"—",
		fmt.Sprintf("%.3f×", f.gzipBodyPerG/f.bodyPerG),
	}, "—", nil)
}

// held is the heap held after one huge flush, judged against the budget.
func (t *table) held(n int, b, o int64) {
	t.add(fmt.Sprintf("heap held after a %d-metric flush (live heap after GC, minus after Connect; in-process)", n), cells{
		mib(b),
		mib(o),
		"—",
		"—",
	}, "≤ "+mib(heldBudget), judged(o <= heldBudget))
}

func (t *table) heap(b, o []uint64) {
	growth := func(h []uint64) float64 { return 100 * (float64(h[len(h)-1]) - float64(h[9])) / float64(h[9]) }
	show := func(h []uint64) string {
		return fmt.Sprintf("%s → %s (%+.1f%%)", mib(int64(h[9])), mib(int64(h[len(h)-1])), growth(h))
	}
	t.add(fmt.Sprintf("heap in use after flush 10 → %d (after GC; in-process)", len(o)), cells{
		show(b),
		show(o),
		"—",
		fmt.Sprintf("%.3f× built-in", float64(o[len(o)-1])/float64(b[len(b)-1])),
	}, fmt.Sprintf("flat: ≤ %+.0f%%", maxHeapGrowthPct), judged(growth(o) <= maxHeapGrowthPct))
}

func (t *table) write(w io.Writer) {
	fmt.Fprintln(w, "| workload | metric | built-in | ours | floor | ratio | target | result |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---|")
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r[:], " | "))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
