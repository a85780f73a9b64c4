package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/plugins/outputs"
)

// The CPU runs measure CPU as CPU: each plugin runs in a process of its own
// (the benchmark binary run again with ChildFlag), loaded through Telegraf's
// config loader and written through models.RunningOutput, against the fake
// API in a third process (ServeAPI). The child counts its own user+system
// CPU time (getrusage RUSAGE_SELF) around each WriteBatch, so neither the
// API's work nor the other plugin's garbage is in the figures.

// ChildFlag is the flag that makes the benchmark binary a child: its value
// is a Job as JSON.
const ChildFlag = "benchkit-child"

// Job is what one child process runs.
type Job struct {
	// Plugin is a key of the creators the binary passes to ChildMain, or
	// FloorPlugin.
	Plugin string
	// Load is the workload's name (Standard or FleetLoad) and Hosts its
	// size: each collection interval is Hosts × 10 metrics.
	Load  string
	Hosts int
	// Batches are timed, BatchSize metrics each (metric_batch_size).
	Batches, BatchSize int
	// Extra is appended to the [[outputs.librato]] table.
	Extra string
	// URL is the API's legacy endpoint, Control the fake's control URL.
	URL, Control string
	// SendsNothing: the plugin is a no-op, whose delivery is not checked.
	SendsNothing bool
	// CPUProfile, when set, is where the child writes a CPU profile of
	// its whole run (focus on WriteBatch to leave the workload's making out).
	CPUProfile string
}

// FloorPlugin is the Job.Plugin of the floor: the request bodies of
// FloorOf, posted by a minimal HTTP client with the same concurrency.
const FloorPlugin = "floor"

// FloorOf is the plugin whose bodies the floor posts.
const FloorOf = "ours"

// Batch is what one WriteBatch cost the child.
type Batch struct {
	CPU, Wall      time.Duration
	Mallocs, Bytes uint64
	Gauges         int
}

// JobResult is a child's report.
type JobResult struct {
	Batches []Batch
	// The floor's: encoding the bodies on their own (CPU), the JSON bytes
	// posted, and those bytes gzipped as content_encoding = "gzip" would.
	EncodeCPU             time.Duration
	EncodeGauges          int
	BodyBytes, GzipBytes  int64
	Requests              int
	Err                   string
	GOMAXPROCS, NumCPU    int
	ElapsedWithoutWarmups time.Duration
	// Rounds is how many runs of the same job Pool joined into this
	// result, each Batches/Rounds batches from its own Connect; 0 means 1.
	Rounds int
}

// Pool joins runs of one job into one result: their batches one after the
// other, their floor figures summed.
func Pool(runs []JobResult) JobResult {
	if len(runs) == 0 {
		return JobResult{}
	}
	p := runs[0]
	p.Batches = nil
	p.EncodeCPU, p.EncodeGauges, p.BodyBytes, p.GzipBytes, p.Requests, p.ElapsedWithoutWarmups = 0, 0, 0, 0, 0, 0
	for _, r := range runs {
		p.Batches = append(p.Batches, r.Batches...)
		p.EncodeCPU += r.EncodeCPU
		p.EncodeGauges += r.EncodeGauges
		p.BodyBytes += r.BodyBytes
		p.GzipBytes += r.GzipBytes
		p.Requests += r.Requests
		p.ElapsedWithoutWarmups += r.ElapsedWithoutWarmups
		if r.Err != "" && p.Err == "" {
			p.Err = r.Err
		}
	}
	p.Rounds = len(runs)
	return p
}

// RunJob runs job in a child process (the running binary with -ChildFlag)
// and returns its report. The child's stderr is passed on to log.
func RunJob(job Job, log io.Writer) (JobResult, error) {
	spec, err := json.Marshal(job)
	if err != nil {
		return JobResult{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return JobResult{}, err
	}
	cmd := exec.Command(exe, "-"+ChildFlag, string(spec))
	cmd.Stderr = log
	out, err := cmd.Output()
	var res JobResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return JobResult{}, fmt.Errorf("%s/%s child: %w (report: %w)", job.Load, job.Plugin, err, jerr)
	}
	if res.Err != "" {
		return res, fmt.Errorf("%s/%s child: %s", job.Load, job.Plugin, res.Err)
	}
	return res, err
}

// ChildMain runs the Job spec in this process and prints its JobResult as
// JSON. creators are the plugins by Job.Plugin: the one chosen is
// registered as outputs.librato before the config is loaded (both plugins
// register under that name, so the registry cannot be trusted to hold the
// one wanted).
func ChildMain(spec string, creators map[string]outputs.Creator) error {
	var job Job
	var res JobResult
	err := json.Unmarshal([]byte(spec), &job)
	if err == nil && job.CPUProfile != "" {
		err = startProfile(job.CPUProfile)
		defer pprof.StopCPUProfile()
	}
	if err == nil {
		res, err = runOne(job, creators)
	}
	if err != nil {
		res.Err = err.Error()
	}
	res.GOMAXPROCS, res.NumCPU = runtime.GOMAXPROCS(0), runtime.NumCPU()
	return json.NewEncoder(os.Stdout).Encode(res)
}

func startProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return pprof.StartCPUProfile(f)
}

func loadByName(name string) (Load, error) {
	for _, l := range []Load{Standard, FleetLoad} {
		if l.Name == name {
			return l, nil
		}
	}
	return Load{}, fmt.Errorf("unknown workload %q", name)
}

func runOne(job Job, creators map[string]outputs.Creator) (JobResult, error) {
	load, err := loadByName(job.Load)
	if err != nil {
		return JobResult{}, err
	}
	if job.Plugin == FloorPlugin {
		return runFloor(job, load, creators[FloorOf])
	}
	create, ok := creators[job.Plugin]
	if !ok {
		return JobResult{}, fmt.Errorf("unknown plugin %q", job.Plugin)
	}
	ro, err := openConfigured(create, job, job.URL)
	if err != nil {
		return JobResult{}, err
	}
	defer ro.Close()
	api := control(job.Control)
	var res JobResult
	started := time.Now()
	err = chunks(job, load, func(ms []telegraf.Metric) error {
		if err := api.reset(); err != nil {
			return err
		}
		runtime.GC() // making ms calls for one; it is not the plugin's
		want := 0
		for batch := range slices.Chunk(ms, job.BatchSize) {
			b, err := writeBatch(ro, batch)
			if err != nil {
				return err
			}
			res.Batches = append(res.Batches, b)
			want += b.Gauges
		}
		if job.SendsNothing {
			return nil
		}
		got, err := api.gauges()
		if err == nil && got != want {
			err = fmt.Errorf("%s: the fake API stored %d gauges of %d sent", job.Plugin, got, want)
		}
		return err
	})
	res.ElapsedWithoutWarmups = time.Since(started)
	return res, err
}

// chunks hands f the job's metrics, about ten batches at a time: made
// before f times anything, so that only the garbage of writing them is
// collected in the timed sections. A chunk is whole intervals; the last
// may be cut short to make Batches batches in all.
func chunks(job Job, load Load, f func([]telegraf.Metric) error) error {
	perInterval := job.Hosts * MetricsPerHost
	at := Now()
	for left := job.Batches * job.BatchSize; left > 0; {
		intervals := (min(10*job.BatchSize, left) + perInterval - 1) / perInterval
		ms := make([]telegraf.Metric, 0, intervals*perInterval)
		for range intervals {
			ms = append(ms, load.Metrics(job.Hosts, at)...)
			at = at.Add(Interval)
		}
		ms = ms[:min(len(ms), left)]
		left -= len(ms)
		if err := f(ms); err != nil {
			return err
		}
	}
	return nil
}

// writeBatch hands batch to the output as the agent does with a single
// output, and measures its WriteBatch.
func writeBatch(ro *models.RunningOutput, batch []telegraf.Metric) (Batch, error) {
	b := Batch{Gauges: Gauges(batch)}
	for _, m := range batch {
		ro.AddMetricNoCopy(m)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.Mallocs, b.Bytes = ms.Mallocs, ms.TotalAlloc
	cpu, wall := cpuTime(), time.Now()
	var err error
	// Labelled, so that a profile can be narrowed to the timed sections
	// (pprof -tagfocus=phase=write): goroutines started inside inherit it.
	pprof.Do(context.Background(), pprof.Labels("phase", "write"), func(context.Context) {
		err = ro.WriteBatch()
	})
	b.Wall, b.CPU = time.Since(wall), cpuTime()-cpu
	runtime.ReadMemStats(&ms)
	b.Mallocs, b.Bytes = ms.Mallocs-b.Mallocs, ms.TotalAlloc-b.Bytes
	if err == nil && ro.BufferLength() != 0 {
		err = fmt.Errorf("the WriteBatch left %d metrics buffered", ro.BufferLength())
	}
	return b, err
}

// openConfigured loads an [[outputs.librato]] table for url through
// Telegraf's config loader, with create registered as outputs.librato, and
// runs Init and Connect as the agent does.
func openConfigured(create outputs.Creator, job Job, url string) (*models.RunningOutput, error) {
	if err := setupLogging(); err != nil {
		return nil, err
	}
	outputs.Add("librato", create)
	toml := fmt.Sprintf("[[outputs.librato]]\n  api_user = %q\n  api_token = %q\n  api_url = %q\n"+
		"  metric_batch_size = %d\n  metric_buffer_limit = %d\n%s\n",
		User, Token, url, job.BatchSize, max(10*job.BatchSize, models.DefaultMetricBufferLimit), job.Extra)
	c := config.NewConfig()
	if err := c.LoadConfigData([]byte(toml), "librato-bench.conf"); err != nil {
		return nil, fmt.Errorf("loading config: %w", err)
	}
	if len(c.Outputs) != 1 {
		return nil, fmt.Errorf("loading config: %d outputs, want 1", len(c.Outputs))
	}
	ro := c.Outputs[0]
	if err := ro.Init(); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if err := ro.Connect(); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return ro, nil
}

// control is the fake API's control endpoint (ServeAPI).
type control string

func (c control) reset() error {
	resp, err := http.Post(string(c)+"/reset", "text/plain", http.NoBody)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (c control) gauges() (int, error) {
	resp, err := http.Get(string(c) + "/gauges")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n int
	_, err = fmt.Fscan(resp.Body, &n)
	return n, err
}

// Median is the median of vs (0 for none).
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// runFloor measures what HTTP alone costs for the bodies FloorOf sends: per
// chunk, it writes the metrics through that plugin to an in-process capture
// server (untimed), then posts the captured bodies of each batch to the
// fake API with a minimal client, DefaultConcurrentWrites at a time, timed
// like a plugin's WriteBatch. It also times encoding those bodies' gauges
// with the plugin's encoder on its own.
func runFloor(job Job, load Load, create outputs.Creator) (JobResult, error) {
	if create == nil {
		return JobResult{}, fmt.Errorf("no plugin %q to take the floor's bodies from", FloorOf)
	}
	capture := newCapture()
	defer capture.Close()
	ro, err := openConfigured(create, job, capture.URL())
	if err != nil {
		return JobResult{}, err
	}
	defer ro.Close()
	api := control(job.Control)
	client := newFloorClient(job.URL)
	defer client.close()

	var res JobResult
	started := time.Now()
	err = chunks(job, load, func(ms []telegraf.Metric) error {
		var perBatch [][][]byte
		var gauges []int
		for batch := range slices.Chunk(ms, job.BatchSize) {
			for _, m := range batch {
				ro.AddMetricNoCopy(m)
			}
			if err := ro.WriteBatch(); err != nil {
				return fmt.Errorf("capturing the bodies: %w", err)
			}
			perBatch = append(perBatch, capture.take())
			gauges = append(gauges, Gauges(batch))
		}
		if err := encodeAlone(&res, perBatch); err != nil {
			return err
		}
		if err := api.reset(); err != nil {
			return err
		}
		runtime.GC() // the capture's and the decoding's garbage is not the floor's
		want := 0
		for i, bodies := range perBatch {
			b, err := client.postAll(bodies)
			if err != nil {
				return err
			}
			b.Gauges = gauges[i]
			want += b.Gauges
			res.Batches = append(res.Batches, b)
			res.Requests += len(bodies)
		}
		got, err := api.gauges()
		if err == nil && got != want {
			err = fmt.Errorf("floor: the fake API stored %d gauges of %d sent", got, want)
		}
		return err
	})
	res.ElapsedWithoutWarmups = time.Since(started)
	return res, err
}
