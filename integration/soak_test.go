//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestSoakFaultCycle runs the custom-built agent for SOAK_DURATION (default
// 3m) against the fake API cycling through healthy, 503, connection resets,
// a 400 outage (HTML, empty and other JSON bodies), a 413 outage, redirects and hanging
// answers. It ends with a short 503 outage, stops the agent with SIGTERM
// (the fake is healthy from then on) and checks:
//
//   - every numbered measurement from the first to the last arrived, the
//     backlog of the last outage by the shutdown flush;
//   - no measurement was acknowledged twice: every extra copy comes from a
//     request whose answer was lost (stored, then reset or left hanging);
//   - no request reached the redirect target;
//   - the agent's RSS stays flat.
//
// SOAK_AGENT_LOG=<file> keeps the agent's log (with debug lines).
//
// inputs.mock's step generator numbers the measurements: every series
// (field × host) counts 1, 2, 3, … one value per gather.
//
// The fake stores nothing for a request its fault hook takes over, so a lost
// acknowledgement is modelled in the hook: it records the request's gauges as
// stored by Librato, then resets the connection or leaves it hanging.
func TestSoakFaultCycle(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for minutes")
	}
	duration := soakDuration(t)
	bin := telegrafLibrato(t)
	target := newFake(t, fakelibrato.Options{})
	run := &soakRun{schedule: soakSchedule(duration), redirectTo: target.LegacyURL()}
	fake := newFake(t, fakelibrato.Options{Fault: run.fault})

	dir := t.TempDir()
	conf := writeFile(t, dir, "telegraf.conf", soakConf, soakConfData{
		Hosts: soakHosts, Fields: soakFields, User: apiUser, Token: apiToken, URL: fake.LegacyURL(),
		BufferDir: filepath.Join(dir, "buffer"),
	})
	agent := startSoakAgent(t, bin, conf, run)
	t.Logf("soak for %s: %s; %d series, one value each per second",
		duration, soakCycleText(), len(soakHosts)*len(soakFields))

	time.Sleep(time.Until(run.start.Add(duration)))
	// SIGTERM at x.5 s, half-way between two gathers, so the last gather
	// before it is known: the one at x.0.
	time.Sleep(time.Duration(1500e6-time.Now().Nanosecond()) % time.Second)
	agent.stop(t)

	if p := os.Getenv("SOAK_AGENT_LOG"); p != "" {
		require.NoError(t, os.WriteFile(p, []byte(agent.logs.text()), 0o600))
	}
	res := analyseSoak(t, run, fake, agent)
	res.log(t)

	require.Empty(t, target.Requests(), "the redirect target must never see a request")
	require.Zero(t, res.unhooked, "every request must reach the fault hook (a request the test cannot attribute)")
	require.Empty(t, res.lostAckAnswered, "requests modelled as lost acknowledgements must be unanswered in the fake's log")
	res.requireAllDelivered(t)
	res.requireDuplicatesFromLostAcks(t)
	res.requireFlatMemory(t)
	res.requireBoundedWrites(t)
	// Telegraf logs one line per failed Write (and one per flush interval
	// a Write overruns); the plugin adds nothing per request or measurement.
	require.LessOrEqual(t, len(res.otherLog), 25, "log lines besides Telegraf's per-Write ones:\n%s", strings.Join(res.otherLog, "\n"))
	require.NotContains(t, agent.logs.text(), "Metric buffer overflow", "Telegraf's buffer must not drop anything here")
	require.NotContains(t, agent.logs.text(), "Dropped ", "no soak measurement is invalid: nothing may be dropped on proof")
}

const soakConf = `[agent]
  interval = "1s"
  round_interval = true
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 200
  metric_buffer_limit = 100000
  omit_hostname = true
  # Debug shows "Wrote batch of N metrics in D", the duration of every
  # successful Write.
  debug = true
  # The disk buffer, as a user who must not lose the backlog of an outage
  # would run it: metrics come back to the plugin re-serialized.
  buffer_strategy = "disk"
  buffer_directory = {{printf "%q" .BufferDir}}
{{range $host := .Hosts}}
[[inputs.mock]]
  metric_name = "soak"
  [inputs.mock.tags]
    host = "{{$host}}"
{{- range $.Fields}}
  [[inputs.mock.step]]
    name = "{{.}}"
    start = 1.0
    step = 1.0
{{- end}}
{{end}}
[[outputs.librato]]
  api_user = {{printf "%q" .User}}
  api_token = {{printf "%q" .Token}}
  api_url = {{printf "%q" .URL}}
  # Small, so that every fault phase makes Writes retry, give up and resume.
  timeout = "1s"
  retry_budget = "2s"
  max_retry_after = "2s"
  concurrent_writes = 4
  measurements_per_request = 20
`

type soakConfData struct {
	Hosts, Fields    []string
	User, Token, URL string
	BufferDir        string
}

var (
	soakHosts  = []string{"agent-0", "agent-1", "agent-2", "agent-3", "agent-4", "agent-5", "agent-6", "agent-7"}
	soakFields = []string{"seq0", "seq1", "seq2", "seq3", "seq4", "seq5", "seq6", "seq7"}
)

const (
	soakDefaultDuration = 3 * time.Minute
	soakHealthyGap      = 4 * time.Second  // healthy before each fault
	soakFaultLength     = 6 * time.Second  // each fault phase
	soakTail            = 15 * time.Second // at the end: healthy, then soakHold
	soakHold            = 3 * time.Second  // 503 until SIGTERM, so the shutdown flush has a backlog
	soakWarmup          = 5 * time.Second  // RSS samples ignored at the start
)

func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return soakDefaultDuration
	}
	d, err := time.ParseDuration(s)
	require.NoError(t, err, "SOAK_DURATION")
	require.GreaterOrEqual(t, d, soakTail+soakHealthyGap+soakFaultLength, "SOAK_DURATION too short for one fault")
	return d
}

// soakFault is what a phase does with one request.
type soakFault struct {
	what   string // for the table of answers
	action fakelibrato.Action
	// stored: Librato kept the gauges, whatever the client gets to see
	// (the fake stores nothing for a request the hook takes over).
	stored bool
	// acked: the client receives a 2xx status line for it.
	acked bool
}

type soakPhase struct {
	name string
	// fault picks the request's fate from its arrival number; nil is healthy.
	fault func(n int, redirectTo string) soakFault
}

var (
	soakHTMLHeader = http.Header{"Content-Type": {"text/html"}}
	soakJSONHeader = http.Header{"Content-Type": {"application/json"}}
	soakHTML503    = []byte("<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>")
	soakHTML400    = []byte("<html><head><title>400 Bad Request</title></head><body><center><h1>400 Bad Request</h1></center>" +
		"<hr><center>nginx</center></body></html>")
	soakHTML413 = []byte("<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center>" +
		"<hr><center>nginx</center></body></html>")
	soakJSON200 = []byte(`{"status":"ok","padding":"so that half of the body is something"}`)
)

// soakPhases: index 0 is healthy, the last is the shutdown flush (healthy,
// after SIGTERM); the others are the faults, in the order they cycle.
var soakPhases = []soakPhase{
	{name: "healthy"},
	{name: "503", fault: func(n int, _ string) soakFault {
		if n%2 == 0 {
			return soakFault{what: "503 Retry-After: 1", action: fakelibrato.Action{Status: 503, Header: http.Header{"Retry-After": {"1"}}, Body: soakHTML503}}
		}
		return soakFault{what: "503", action: fakelibrato.Action{Status: 503, Header: soakHTMLHeader, Body: soakHTML503}}
	}},
	{name: "reset", fault: func(n int, _ string) soakFault {
		if n%2 == 0 {
			return soakFault{what: "reset", action: fakelibrato.Action{Reset: true}}
		}
		return soakFault{what: "stored, then reset", action: fakelibrato.Action{Reset: true}, stored: true}
	}},
	{name: "400", fault: func(n int, _ string) soakFault {
		switch n % 3 {
		case 0:
			return soakFault{what: "400 html", action: fakelibrato.Action{Status: 400, Header: soakHTMLHeader, Body: soakHTML400}}
		case 1:
			return soakFault{what: "400 empty", action: fakelibrato.Action{Status: 400}}
		default:
			return soakFault{what: "400 other json",
				action: fakelibrato.Action{Status: 400, Header: soakJSONHeader, Body: []byte(`{"message":"Request blocked by policy"}`)}}
		}
	}},
	{name: "413", fault: func(int, string) soakFault {
		return soakFault{what: "413 html", action: fakelibrato.Action{Status: 413, Header: soakHTMLHeader, Body: soakHTML413}}
	}},
	{name: "redirect", fault: func(n int, to string) soakFault {
		status := []int{301, 302, 307, 308}[n%4]
		return soakFault{what: strconv.Itoa(status), action: fakelibrato.Action{Status: status, Header: http.Header{"Location": {to}}}}
	}},
	{name: "hang", fault: func(n int, _ string) soakFault {
		switch n % 4 {
		case 0:
			return soakFault{what: "400 html, body stalls", action: fakelibrato.Action{Status: 400, Header: soakHTMLHeader, Body: soakHTML400, HangBody: true}}
		case 1:
			return soakFault{what: "503 html, body stalls", action: fakelibrato.Action{Status: 503, Header: soakHTMLHeader, Body: soakHTML503, HangBody: true}}
		case 2:
			return soakFault{what: "stored, then no answer", action: fakelibrato.Action{Hang: true}, stored: true}
		default:
			return soakFault{what: "stored, 200, body stalls",
				action: fakelibrato.Action{Status: 200, Header: soakJSONHeader, Body: soakJSON200, HangBody: true}, stored: true, acked: true}
		}
	}},
	{name: "shutdown"},
}

const (
	soakHealthy  = 0
	soak503      = 1
	soakShutdown = 7
)

func soakCycleText() string {
	names := make([]string, 0, soakShutdown-1)
	for _, p := range soakPhases[1:soakShutdown] {
		names = append(names, p.name)
	}
	return fmt.Sprintf("%s healthy before each of %s (%s each), then %s healthy and %s of 503 until SIGTERM, healthy from then on",
		soakHealthyGap, strings.Join(names, ", "), soakFaultLength, soakTail-soakHold, soakHold)
}

// soakSpan is one stretch of the timeline, relative to the agent's start.
type soakSpan struct {
	phase    int
	from, to time.Duration
}

// soakSchedule cycles healthy gap + fault through the faults until the
// tail, cutting the last stretch short. The tail is healthy, then 503 for
// soakHold: whatever was gathered then is left to the shutdown flush, for
// which the fake is healthy again.
func soakSchedule(total time.Duration) []soakSpan {
	var spans []soakSpan
	end := total - soakTail
	at := time.Duration(0)
	add := func(phase int, d time.Duration) {
		if at >= end {
			return
		}
		spans = append(spans, soakSpan{phase, at, min(at+d, end)})
		at = min(at+d, end)
	}
	for fault := 1; at < end; fault = fault%(soakShutdown-1) + 1 {
		add(soakHealthy, soakHealthyGap)
		add(fault, soakFaultLength)
	}
	return append(spans,
		soakSpan{soakHealthy, end, total - soakHold},
		soakSpan{soak503, total - soakHold, time.Duration(math.MaxInt64)})
}

// soakRequest is what the fault hook saw and decided for one request.
type soakRequest struct {
	n      int
	phase  int
	fault  soakFault
	gauges []soakKey
}

// soakKey names one numbered measurement.
type soakKey struct {
	series string // name@source
	value  int64
	time   int64
}

// soakRun is the shared state of the fault hook, the agent's log and the
// RSS sampler.
type soakRun struct {
	schedule   []soakSpan
	redirectTo string

	mu       sync.Mutex
	start    time.Time
	sigterm  time.Time // zero until SIGTERM was sent
	exited   time.Time
	requests []soakRequest
	badGauge string // a gauge the test cannot read as a numbered measurement
}

func (r *soakRun) phaseAtLocked(at time.Time) int {
	if !r.sigterm.IsZero() && !at.Before(r.sigterm) {
		return soakShutdown
	}
	d := at.Sub(r.start)
	for _, s := range r.schedule {
		if d < s.to {
			return s.phase
		}
	}
	return soakHealthy
}

// fault is the fake's hook: the phase at arrival decides.
func (r *soakRun) fault(n int, rec *fakelibrato.Received) fakelibrato.Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	phase := r.phaseAtLocked(time.Now())
	var f soakFault
	if p := soakPhases[phase]; p.fault != nil {
		f = p.fault(n, r.redirectTo)
	}
	req := soakRequest{n: n, phase: phase, fault: f}
	for _, g := range rec.Gauges {
		v := int64(g.Value)
		if float64(v) != g.Value || v < 1 {
			r.badGauge = g.Name + " " + strconv.FormatFloat(g.Value, 'g', -1, 64)
		}
		req.gauges = append(req.gauges, soakKey{series: g.Name + "@" + g.Source, value: v, time: g.MeasureTime})
	}
	r.requests = append(r.requests, req)
	return f.action
}

// soakAgent is the running agent with its timestamped log and RSS samples.
type soakAgent struct {
	cmd     *exec.Cmd
	run     *soakRun
	logs    *soakLineLog
	exited  chan error
	done    chan struct{} // stops the sampler
	stopped bool

	mu  sync.Mutex
	rss []soakRSSSample
}

type soakRSSSample struct {
	at time.Time
	kb int64
}

func startSoakAgent(t *testing.T, bin, conf string, run *soakRun) *soakAgent {
	t.Helper()
	a := &soakAgent{run: run, logs: &soakLineLog{}, exited: make(chan error, 1), done: make(chan struct{})}
	a.cmd = exec.Command(bin, "--config", conf)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	run.mu.Lock()
	run.start = time.Now()
	run.mu.Unlock()
	require.NoError(t, a.cmd.Start())
	go func() { a.exited <- a.cmd.Wait() }()
	go a.sample(a.cmd.Process.Pid)
	t.Cleanup(func() {
		if !a.stopped {
			killProcess(t, a.cmd.Process)
			<-a.exited
			close(a.done)
		}
	})
	return a
}

// stop sends SIGTERM to the agent process only (its final flush is part of
// what is tested) and waits for it to exit.
func (a *soakAgent) stop(t *testing.T) {
	t.Helper()
	a.run.mu.Lock()
	a.run.sigterm = time.Now()
	a.run.mu.Unlock()
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-a.exited:
		a.stopped = true
		close(a.done)
		a.run.mu.Lock()
		a.run.exited = time.Now()
		a.run.mu.Unlock()
		require.NoError(t, err, "agent exit after SIGTERM\n%s", a.logs)
	case <-time.After(time.Minute):
		t.Fatalf("agent still running a minute after SIGTERM\n%s", a.logs)
	}
}

// sample reads VmRSS twice a second until the agent exits.
func (a *soakAgent) sample(pid int) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-tick.C:
		}
		kb, ok := soakVMRSS(pid)
		if !ok {
			continue
		}
		a.mu.Lock()
		a.rss = append(a.rss, soakRSSSample{time.Now(), kb})
		a.mu.Unlock()
	}
}

func soakVMRSS(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}

// soakLineLog keeps a process's output as lines stamped with their arrival.
type soakLineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []soakLogLine
}

type soakLogLine struct {
	at   time.Time
	text string
}

func (l *soakLineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.lines = append(l.lines, soakLogLine{now, string(l.partial[:i])})
		l.partial = l.partial[i+1:]
	}
}

func (l *soakLineLog) snapshot() []soakLogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *soakLineLog) text() string {
	var b strings.Builder
	for _, line := range l.snapshot() {
		b.WriteString(line.text)
		b.WriteByte('\n')
	}
	return b.String()
}

func (l *soakLineLog) String() string { return l.text() }

// soakRow is one line of the summary table.
type soakRow struct {
	time                    time.Duration
	requests                int
	answers                 map[string]int
	logLines                int // I!, W! and E!: what a user sees without debug
	writesOK, writesFailed  int
	maxWriteOK              time.Duration
	maxWriteBound           time.Duration // time since the previous Write ended: an upper bound
	gathered, delivered     int
	duplicated, lostAckSent int
	dropped                 int
}

type soakResult struct {
	rows       []soakRow
	unhooked   int
	lastGather int64 // unix second of the last gather before SIGTERM
	series     map[string]*soakSeries
	// lostAckAnswered lists lost-ack requests the fake's log shows answered.
	lostAckAnswered []int
	// dupAcked lists measurements acknowledged more than once.
	dupAcked              []string
	gaps                  []string
	duplicates, lostAcked int
	copiesHist            map[int]int // copies stored → measurements
	// otherLog: I!/W!/E! lines other than Telegraf's one per failed or
	// slow Write (start-up, shutdown, and whatever the plugin logs).
	otherLog   []string
	mostCopies string // an example of the most copies
	rss        []soakRSSSample
}

// soakSeries is what arrived of one series, by value.
type soakSeries struct {
	sent    map[int64][]string // every request that carried the value
	copies  map[int64][]soakCopy
	times   map[int64]int64
	max     int64
	maxTime int64
}

// soakCopy is one stored copy of a measurement.
type soakCopy struct {
	n     int // the request that carried it
	phase int // at the request's arrival
	acked bool
}

func (c soakCopy) String() string {
	if c.acked {
		return fmt.Sprintf("#%d(%s, acknowledged)", c.n, soakPhases[c.phase].name)
	}
	return fmt.Sprintf("#%d(%s, ack lost)", c.n, soakPhases[c.phase].name)
}

var soakWroteBatch = regexp.MustCompile(`Wrote batch of \d+ metrics in (\S+)$`)

func analyseSoak(t *testing.T, run *soakRun, fake *fakelibrato.Server, agent *soakAgent) *soakResult {
	t.Helper()
	run.mu.Lock()
	defer run.mu.Unlock()
	require.Empty(t, run.badGauge, "a gauge that is not a step value")

	res := &soakResult{rows: make([]soakRow, len(soakPhases)), series: map[string]*soakSeries{}, copiesHist: map[int]int{}}
	for i := range res.rows {
		res.rows[i].answers = map[string]int{}
	}
	for _, s := range run.schedule {
		res.rows[s.phase].time += min(s.to, run.sigterm.Sub(run.start)) - s.from
	}
	res.rows[soakShutdown].time = run.exited.Sub(run.sigterm)

	res.countRequests(t, run, fake)
	res.countMeasurements(run)
	res.countLog(run, agent.logs.snapshot())
	agent.mu.Lock()
	res.rss = slices.Clone(agent.rss)
	agent.mu.Unlock()
	// SIGTERM came at x.5 s: the gather at x.0 was the last.
	res.lastGather = run.sigterm.Unix()
	return res
}

// countRequests joins the hook's decisions with the fake's log: a request is
// stored if the fake stored it (no fault, 2xx) or the hook modelled Librato
// storing it before the answer was lost or stalled.
func (res *soakResult) countRequests(t *testing.T, run *soakRun, fake *fakelibrato.Server) {
	t.Helper()
	status := map[int]int{}
	for _, r := range fake.Requests() {
		status[r.N] = r.Status
	}
	hooked := map[int]bool{}
	fakeStored := map[soakKey]int{}
	for _, req := range run.requests {
		hooked[req.n] = true
		row := &res.rows[req.phase]
		row.requests++
		st, logged := status[req.n]
		label := req.fault.what
		if soakNoFault(req.fault.action) {
			label = strconv.Itoa(st)
		}
		if !logged {
			label += " (not in the fake's log)"
		}
		row.answers[label]++
		for _, k := range req.gauges {
			s := res.seriesOf(k.series)
			s.sent[k.value] = append(s.sent[k.value], fmt.Sprintf("#%d %s", req.n, label))
		}

		stored, acked := req.fault.stored, req.fault.acked
		if soakNoFault(req.fault.action) && st/100 == 2 {
			stored, acked = true, true
			for _, k := range req.gauges {
				fakeStored[k]++
			}
		}
		if !stored {
			continue
		}
		if !acked {
			row.lostAckSent += len(req.gauges)
			res.lostAcked += len(req.gauges)
			if st != 0 {
				res.lostAckAnswered = append(res.lostAckAnswered, req.n)
			}
		}
		for _, k := range req.gauges {
			s := res.seriesOf(k.series)
			s.copies[k.value] = append(s.copies[k.value], soakCopy{req.n, req.phase, acked})
			s.times[k.value] = k.time
			if k.value > s.max {
				s.max, s.maxTime = k.value, k.time
			}
		}
	}
	for n := range status {
		if !hooked[n] {
			res.unhooked++
		}
	}
	// The bookkeeping must agree with what the fake itself stored.
	for _, g := range fake.Gauges() {
		fakeStored[soakKey{g.Name + "@" + g.Source, int64(g.Value), g.MeasureTime}]--
	}
	for k, n := range fakeStored {
		require.Zero(t, n, "the fake stored %v %d times fewer than its log says", k, n)
	}
}

func soakNoFault(a fakelibrato.Action) bool {
	return a.Status == 0 && !a.Reset && !a.Hang && !a.HangBody
}

func (res *soakResult) seriesOf(name string) *soakSeries {
	s := res.series[name]
	if s == nil {
		s = &soakSeries{sent: map[int64][]string{}, copies: map[int64][]soakCopy{}, times: map[int64]int64{}}
		res.series[name] = s
	}
	return s
}

// countMeasurements fills gathered, delivered, duplicated and dropped per
// phase. A measurement is gathered in the phase of its own time (estimated
// from value 1's time if it never arrived), delivered in the phase of the
// first request that stored it, and each later copy is a duplicate in the
// phase of the request that stored it.
func (res *soakResult) countMeasurements(run *soakRun) {
	for name, s := range res.series {
		for v := int64(1); v <= s.max; v++ {
			copies := s.copies[v]
			if len(copies) == 0 {
				if first, ok := s.times[1]; ok {
					est := run.phaseAtLocked(time.Unix(first+v-1, 0))
					res.rows[est].gathered++
					res.rows[est].dropped++
				}
				res.gaps = append(res.gaps, fmt.Sprintf("%s=%d", name, v))
				continue
			}
			slices.SortFunc(copies, func(a, b soakCopy) int { return a.n - b.n })
			res.copiesHist[len(copies)]++
			if len(copies) > 1 && len(copies) >= slices.Max(slices.Collect(maps.Keys(res.copiesHist))) {
				res.mostCopies = fmt.Sprintf("%s=%d stored %d times, sent in %s", name, v, len(copies), strings.Join(s.sent[v], ", "))
			}
			res.rows[run.phaseAtLocked(time.Unix(s.times[v], 0))].gathered++
			res.rows[copies[0].phase].delivered++
			acked := 0
			for i, c := range copies {
				if c.acked {
					acked++
				}
				if i > 0 {
					res.rows[c.phase].duplicated++
					res.duplicates++
				}
			}
			if acked > 1 {
				res.dupAcked = append(res.dupAcked, fmt.Sprintf("%s=%d: %v", name, v, copies))
			}
		}
	}
	slices.Sort(res.gaps)
	slices.Sort(res.dupAcked)
}

// countLog fills log lines and Write results per phase, by arrival time.
// Telegraf writes one line per Write: "Wrote batch …" (debug) on success,
// "Error writing to …" on failure.
func (res *soakResult) countLog(run *soakRun, lines []soakLogLine) {
	lastEnd := run.start
	for _, l := range lines {
		row := &res.rows[run.phaseAtLocked(l.at)]
		if !strings.Contains(l.text, " D! ") {
			row.logLines++
			if !strings.Contains(l.text, "Error writing to outputs.librato") && !strings.Contains(l.text, "did not complete within its flush interval") {
				res.otherLog = append(res.otherLog, l.text)
			}
		}
		ended := false
		if m := soakWroteBatch.FindStringSubmatch(l.text); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				row.maxWriteOK = max(row.maxWriteOK, d)
			}
			row.writesOK++
			ended = true
		}
		if strings.Contains(l.text, "Error writing to outputs.librato") {
			row.writesFailed++
			ended = true
		}
		if ended {
			row.maxWriteBound = max(row.maxWriteBound, l.at.Sub(lastEnd))
			lastEnd = l.at
		}
	}
}

func (res *soakResult) log(t *testing.T) {
	t.Helper()
	var b strings.Builder
	line := func(name string, r soakRow) {
		fmt.Fprintf(&b, "%-9s %5s %8d %9d %4d/%-4d %7s %7s %8d %9d %5d %8d %7d\n",
			name, r.time.Round(time.Second), r.requests, r.logLines, r.writesOK, r.writesFailed,
			r.maxWriteOK.Round(time.Millisecond), r.maxWriteBound.Round(10*time.Millisecond),
			r.gathered, r.delivered, r.duplicated, r.lostAckSent, r.dropped)
	}
	fmt.Fprintf(&b, "\n%-9s %5s %8s %9s %9s %7s %7s %8s %9s %5s %8s %7s\n",
		"phase", "time", "requests", "log lines", "writes", "max ok", "max <=", "gathered", "delivered", "dup", "lost-ack", "dropped")
	var total soakRow
	for i, r := range res.rows {
		line(soakPhases[i].name, r)
		total.time += r.time
		total.requests += r.requests
		total.logLines += r.logLines
		total.writesOK += r.writesOK
		total.writesFailed += r.writesFailed
		total.gathered += r.gathered
		total.delivered += r.delivered
		total.duplicated += r.duplicated
		total.lostAckSent += r.lostAckSent
		total.dropped += r.dropped
		total.maxWriteOK = max(total.maxWriteOK, r.maxWriteOK)
		total.maxWriteBound = max(total.maxWriteBound, r.maxWriteBound)
	}
	line("total", total)
	t.Logf("soak summary. log lines: I!/W!/E! lines by arrival time; writes: Write calls ok/failed; "+
		"max ok: longest successful Write; max <=: longest time between two Write results, a bound on every Write; "+
		"gathered: by the measurement's time; delivered: first copies stored; dup: extra copies stored; "+
		"lost-ack: measurements in requests stored but never acknowledged; dropped: never arrived%s", b.String())
	for i, r := range res.rows {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.answers)) {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, r.answers[k]))
		}
		t.Logf("answers during %-9s %s", soakPhases[i].name+":", strings.Join(parts, ", "))
	}
	hist := make([]string, 0, len(res.copiesHist))
	for _, c := range slices.Sorted(maps.Keys(res.copiesHist)) {
		hist = append(hist, fmt.Sprintf("%d: %d", c, res.copiesHist[c]))
	}
	t.Logf("measurements by copies stored (copies: measurements) %s; duplicates %d, measurements in requests stored but not acknowledged %d; most copies: %s",
		strings.Join(hist, ", "), res.duplicates, res.lostAcked, res.mostCopies)
	rss := res.rssThirds()
	first, middle, last, peak := rss.first, rss.middle, rss.last, rss.peak
	t.Logf("agent RSS (KiB, %d samples after %s warm-up): first third avg %d, middle %d, last third %d; peak %d",
		len(res.rss), soakWarmup, first, middle, last, peak)
}

func (res *soakResult) requireAllDelivered(t *testing.T) {
	t.Helper()
	require.Positive(t, res.rows[soakShutdown].delivered, "the shutdown flush must deliver the backlog of the last outage")
	require.Len(t, res.series, len(soakHosts)*len(soakFields), "series at the fake")
	require.Empty(t, res.gaps, "%d numbered measurements never arrived, e.g. %v", len(res.gaps), soakFirst(res.gaps, 20))
	for name, s := range res.series {
		require.NotEmpty(t, s.copies[1], "%s: value 1 never arrived", name)
		// The shutdown flush delivered what was gathered just before
		// SIGTERM (one tick of slack for a gather delayed on a busy machine).
		require.GreaterOrEqual(t, s.maxTime, res.lastGather-1,
			"%s: the last value arrived is %d gathered at %d; SIGTERM came at %d.5", name, s.max, s.maxTime, res.lastGather)
	}
}

func (res *soakResult) requireDuplicatesFromLostAcks(t *testing.T) {
	t.Helper()
	require.Empty(t, res.dupAcked, "%d measurements acknowledged more than once (only a lost answer may cause a resend), e.g. %v",
		len(res.dupAcked), soakFirst(res.dupAcked, 10))
	require.LessOrEqual(t, res.duplicates, res.lostAcked, "duplicates beyond what lost acknowledgements explain")
}

// requireFlatMemory: the last third's average RSS stays within 1.5× the
// first third's plus 8 MiB (Go returns memory lazily; a leak per request or
// per flush grows far beyond that over hundreds of flushes).
func (res *soakResult) requireFlatMemory(t *testing.T) {
	t.Helper()
	rss := res.rssThirds()
	first, last := rss.first, rss.last
	require.Positive(t, first, "no RSS samples")
	require.LessOrEqual(t, last, first*3/2+8<<10, "agent RSS grew: first third avg %d KiB, last third avg %d KiB", first, last)
}

// requireBoundedWrites: a Write ends within timeout + retry_budget (3s).
// The measured bound also holds the wait for the flush that started it
// (up to flush_interval), and a busy machine gets 3s more.
func (res *soakResult) requireBoundedWrites(t *testing.T) {
	t.Helper()
	for i, r := range res.rows {
		require.LessOrEqual(t, r.maxWriteBound, 7*time.Second, "a Write during %s took up to %s", soakPhases[i].name, r.maxWriteBound)
	}
}

// soakRSS is the agent's RSS in KiB: averages of the thirds of the samples
// after the warm-up, and the peak.
type soakRSS struct {
	first, middle, last, peak int64
}

func (res *soakResult) rssThirds() soakRSS {
	var kb []int64
	var out soakRSS
	if len(res.rss) == 0 {
		return out
	}
	start := res.rss[0].at.Add(soakWarmup)
	for _, s := range res.rss {
		out.peak = max(out.peak, s.kb)
		if s.at.After(start) {
			kb = append(kb, s.kb)
		}
	}
	if len(kb) < 3 {
		return out
	}
	third := len(kb) / 3
	out.first, out.middle, out.last = soakAvg(kb[:third]), soakAvg(kb[third:len(kb)-third]), soakAvg(kb[len(kb)-third:])
	return out
}

func soakFirst(xs []string, n int) []string { return xs[:min(n, len(xs))] }

func soakAvg(xs []int64) int64 {
	var sum int64
	for _, x := range xs {
		sum += x
	}
	return sum / int64(len(xs))
}
