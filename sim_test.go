package librato

// Deterministic simulation of the plugin against a simulated Librato
// (internal/simlibrato), in the spirit of FoundationDB's simulation testing
// and Jepsen's checkers. Each seed draws a configuration, a fault schedule
// and an agent modelled on Telegraf's RunningOutput (batches, buffer
// overflow, retries with new metrics, restarts, the disk buffer's
// re-serialization), runs them in a testing/synctest bubble (virtual time,
// no sockets), ends with a healthy phase, and then checks the whole history
// (sim_check_test.go).
//
//	go test -run 'TestSimulation$' .                      # 10,000 seeds (1,000 with -short, 300 with -race)
//	go test -run 'TestSimulation$' -sim.seeds=1000000 -timeout=3h -v .   # or SIM_SEEDS=1000000; -sim.first=N to start elsewhere
//	go test -run 'TestSimulation$' -sim.seed=123 -v .     # one seed, with its configuration, schedule and history
//	go test -run 'TestSimulation$|TestSimFinding' -sim.strict .   # known bugs fail too
//
// Known bugs (simKnownBugs in sim_check_test.go) are counted and logged, not
// failed, until they are fixed; a 10,000-seed run fails when one no longer
// shows, so that its entry is removed and the checker enforces it. What the
// checker asserts is written at its functions. Replay: a seed draws the same
// configuration, schedule, metrics and per-request faults every time; the
// plugin's backoff jitter (math/rand/v2) and its goroutines' order at one
// virtual instant can still change a history (TestSimulationReplays).

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
	serializers_influx "github.com/influxdata/telegraf/plugins/serializers/influx"

	"github.com/seed-d22a899f/librato/internal/simlibrato"
)

var (
	simSeeds   = flag.Int("sim.seeds", 0, "number of simulation seeds (default 10,000; env SIM_SEEDS)")
	simSeed    = flag.Int64("sim.seed", -1, "run only this simulation seed, verbosely")
	simFirst   = flag.Uint64("sim.first", 1, "first simulation seed")
	simStrict  = flag.Bool("sim.strict", false, "report known bugs as failures too")
	simVerbose = flag.Bool("sim.v", false, "print every seed's summary")
)

// Credentials with characters that every escaping changes.
const (
	simUser  = "ops+sim@example.com"
	simToken = "s1m/t0k+en=x9"
	simHost  = "metrics-api.librato.test"
)

// simConfig is one seed's draw.
type simConfig struct {
	api                   string
	taggedEnabled         bool
	concurrency, perReq   int
	timeout, retryBudget  time.Duration
	maxRetryAfter         time.Duration
	gzip, debug           bool
	defaultSource         string
	maxNewSeries          int
	rules                 simlibrato.Rules
	batch, bufferLimit    int
	disk                  bool
	steps                 int
	interval              time.Duration
	restartChance         float64
	metricsPerStep        int
	healthyFlushes        int
	longNames, quirkHosts bool
	// bigTags gives every metric a tag of this many bytes, unique to it,
	// and manyNames draws names from that many (the memory check's
	// workload: metrics that collapse into the same series, with large tags).
	bigTags, manyNames int
}

func drawConfig(rng *rand.Rand) simConfig {
	c := simConfig{
		api:            []string{apiLegacy, apiTagged, apiAuto}[rng.IntN(3)],
		taggedEnabled:  rng.IntN(3) > 0,
		concurrency:    1 + rng.IntN(4),
		perReq:         1 + rng.IntN(12),
		timeout:        time.Duration(1+rng.IntN(5)) * time.Second,
		retryBudget:    time.Duration(rng.IntN(7)) * time.Second,
		maxRetryAfter:  time.Duration(1+rng.IntN(90)) * time.Second,
		gzip:           rng.IntN(5) == 0,
		debug:          rng.IntN(10) == 0,
		batch:          1 + rng.IntN(20),
		disk:           rng.IntN(10) < 7,
		steps:          3 + rng.IntN(8),
		interval:       time.Duration(5+rng.IntN(26)) * time.Second,
		restartChance:  []float64{0, 0.05, 0.2}[rng.IntN(3)],
		metricsPerStep: 1 + rng.IntN(6),
		healthyFlushes: 12,
		longNames:      rng.IntN(4) == 0,
		quirkHosts:     rng.IntN(4) == 0,
	}
	if c.api == apiTagged {
		c.taggedEnabled = true // a legacy-only account with api = "tagged" is a setting error
	}
	if rng.IntN(3) == 0 {
		c.defaultSource = "defsrc"
	}
	if rng.IntN(5) == 0 {
		c.maxNewSeries = 1 + rng.IntN(5)
	}
	c.bufferLimit = c.batch * (1 + rng.IntN(8))
	c.rules = simlibrato.Rules{
		MaxNameLen:    255,
		PastWindow:    time.Duration(10+rng.IntN(110)) * time.Minute,
		QuirkSources:  rng.IntN(2) == 0,
		TaggedEnabled: c.taggedEnabled,
		TaggedPartial: rng.IntN(2) == 0,
	}
	if rng.IntN(3) == 0 {
		c.rules.MaxNameLen = 40 // a rule the client does not know
	}
	return c
}

// truth is what the simulation knows of one measurement it generated: one
// field of one metric, identified by its value.
type truth struct {
	id      uint64
	name    string // the Librato name: measurement.field
	host    string // the host tag, "" for none
	tagless bool
	time    int64
	// local is the documented reason the plugin must drop it before
	// sending, if any.
	local string
	// agentDropped: the agent's buffer overflowed, or a restart lost the
	// memory buffer. Not the plugin's drop.
	agentDropped string
	writes       []int // the Writes whose batch carried it
	buffered     bool  // still in the agent's buffer at the end
}

// simWrite is one call of Write.
type simWrite struct {
	n, instance int
	start, end  time.Time
	metrics     int
	err         error
}

// simRun is one seed's run: everything the checker needs.
type simRun struct {
	seed    uint64
	cfg     simConfig
	plan    *simlibrato.Plan
	truths  []*truth
	byID    map[uint64]*truth
	ops     []*simlibrato.Op
	writes  []simWrite
	logs    *simLog
	healthy int // first Write of the healthy phase
	end     time.Time
}

// agent models Telegraf's RunningOutput and its buffer.
type agent struct {
	run      *simRun
	rng      *rand.Rand
	srv      *simlibrato.Server
	plugin   *Librato
	instance int
	buf      []telegraf.Metric
	ids      map[telegraf.Metric][]uint64
	nextID   uint64
	ser      *serializers_influx.Serializer
	parser   *influx.Parser
	writeN   int
}

func runSeed(seed uint64) (*simRun, error) {
	run, _, err := simulate(seed, nil)
	return run, err
}

// simulate runs one seed; adjust, if set, changes the drawn configuration.
// It returns the (closed) plugin too, for the memory check.
func simulate(seed uint64, adjust func(*simConfig)) (run *simRun, plugin *Librato, err error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := drawConfig(rng)
	if adjust != nil {
		adjust(&cfg)
	}
	run = &simRun{seed: seed, cfg: cfg, byID: make(map[uint64]*truth), logs: &simLog{}}
	start := time.Now()
	run.plan = simlibrato.NewPlan(rng, start, time.Duration(cfg.steps)*cfg.interval, simUser, simToken)
	srv := simlibrato.New(simlibrato.Config{Host: simHost, User: simUser, Token: simToken, Rules: cfg.rules, Plan: run.plan.Fault})
	a := &agent{run: run, rng: rng, srv: srv, ids: make(map[telegraf.Metric][]uint64), nextID: 1,
		ser: &serializers_influx.Serializer{}, parser: &influx.Parser{}}
	if err := a.ser.Init(); err != nil {
		return run, nil, fmt.Errorf("influx serializer: %w", err)
	}
	if err := a.parser.Init(); err != nil {
		return run, nil, fmt.Errorf("influx parser: %w", err)
	}
	if err := a.start(); err != nil {
		return run, nil, err
	}
	for range cfg.steps {
		time.Sleep(cfg.interval) // the bubble's clock: the agent's flush interval
		for range rng.IntN(cfg.metricsPerStep + 1) {
			a.add(a.newMetric())
		}
		if rng.Float64() < cfg.restartChance {
			if err := a.restart(); err != nil {
				return run, nil, err
			}
		}
		a.flush()
	}
	// The healthy phase: no faults, no new metrics; whatever is buffered
	// must now arrive or be dropped on proof.
	srv.SetPlan(nil)
	run.healthy = a.writeN + 1
	for range cfg.healthyFlushes {
		if len(a.buf) == 0 {
			break
		}
		time.Sleep(10 * time.Second)
		a.flush()
	}
	for _, m := range a.buf {
		for _, id := range a.ids[m] {
			run.byID[id].buffered = true
		}
	}
	if err := a.plugin.Close(); err != nil {
		return run, nil, fmt.Errorf("close: %w", err)
	}
	run.ops = srv.History()
	run.end = time.Now()
	srv.Forget() // the plugin keeps its transport: let the history go with the run
	return run, a.plugin, nil
}

func (a *agent) start() error {
	cfg := a.run.cfg
	l := newLibrato()
	l.APIUser = config.NewSecret([]byte(simUser))
	l.APIToken = config.NewSecret([]byte(simToken))
	l.API = cfg.api
	l.APIURL = "https://" + simHost + map[string]string{apiLegacy: "/v1/metrics", apiTagged: "/v1/measurements", apiAuto: ""}[cfg.api]
	l.ConcurrentWrites = cfg.concurrency
	l.MeasurementsPerRequest = cfg.perReq
	l.Timeout = config.Duration(cfg.timeout)
	l.RetryBudget = config.Duration(cfg.retryBudget)
	l.MaxRetryAfter = config.Duration(cfg.maxRetryAfter)
	if cfg.gzip {
		l.ContentEncoding = "gzip"
	}
	l.Debug = cfg.debug
	l.DefaultSource = cfg.defaultSource
	l.MaxNewSeries = cfg.maxNewSeries
	// A run lasts minutes: a period of 1 to 5 minutes takes the guard past
	// its warm-up (one period) and through windows. From the seed, not the
	// dice, so that the other draws stay as they were.
	l.MaxNewSeriesPeriod = config.Duration(time.Duration(1+a.run.seed%5) * time.Minute)
	l.Log = a.run.logs
	l.transport = a.srv
	l.jitter = seededJitter(a.run.seed, uint64(a.instance))
	if err := l.Init(); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := l.Connect(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	a.plugin = l
	a.instance++
	return nil
}

// restart models a restart of the agent: a new plugin instance with no
// memory of the old one; the disk buffer's metrics come back re-serialized,
// the memory buffer's are lost (the agent's loss, not the plugin's).
func (a *agent) restart() error {
	if err := a.plugin.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if a.run.cfg.disk {
		for i, m := range a.buf {
			a.buf[i] = a.reserialize(m)
		}
	} else {
		for _, m := range a.buf {
			a.dropped(m, "restart")
		}
		a.buf = nil
	}
	return a.start()
}

var simNames = []string{"cpu", "mem", "disk", "net", "Cpu"}

const simLongName = "sim_measurement_with_a_rather_long_name_over_forty"

var simHosts = []string{"web1", "WEB1", "db2", "cache-3", "edge.4"}

func (a *agent) newMetric() telegraf.Metric {
	rng, cfg := a.rng, a.run.cfg
	now := time.Now().Truncate(time.Second)
	name := simNames[rng.IntN(len(simNames))]
	if cfg.manyNames > 0 {
		name = "m" + strconv.Itoa(rng.IntN(cfg.manyNames))
	}
	switch r := rng.IntN(100); {
	case r < 8 && cfg.longNames:
		name = simLongName
	case r == 8:
		name = "" // empty_name, dropped before sending
	}
	tags := map[string]string{}
	host := ""
	switch r := rng.IntN(100); {
	case r < 10: // tagless
	case r < 20 && cfg.quirkHosts:
		host = "1.1" // Librato's quirk: not a valid source
	default:
		host = simHosts[rng.IntN(len(simHosts))]
	}
	if host != "" {
		tags["host"] = host
	}
	if cfg.bigTags > 0 {
		tags["blob"] = fmt.Sprintf("%d-%s", a.nextID, strings.Repeat("x", cfg.bigTags))
	}
	tm := now
	local := ""
	switch r := rng.IntN(100); {
	case r < 4:
		tm = now.Add(-3 * 24 * time.Hour) // too far in the past for Librato
	case r == 4:
		tm = time.Unix(0, 0) // invalid_time, dropped before sending
		local = "invalid_time"
	}
	if name == "" && local == "" {
		local = "empty_name"
	}
	// Fields in a fixed order: a map's order would change the bodies, and
	// with them the plan's dice, from one replay to the next.
	m := metric.New(name, tags, nil, tm)
	fields := 1 + rng.IntN(3)
	if name == "" {
		fields = 1 // a field called "value" is named after the metric alone: ""
	}
	ids := make([]uint64, 0, fields)
	for i := range fields {
		id := a.nextID
		a.nextID++
		key := "f" + strconv.Itoa(i)
		if name == "" {
			key = "value"
		}
		m.AddField(key, float64(id))
		ids = append(ids, id)
		lname := name + "." + key
		if key == "value" {
			lname = name
		}
		t := &truth{id: id, name: lname, host: host, tagless: host == "", time: tm.Unix(), local: local}
		a.run.truths = append(a.run.truths, t)
		a.run.byID[id] = t
	}
	switch rng.IntN(30) {
	case 0:
		m.AddField("nan", math.NaN()) // invalid_value, not tracked
	case 1:
		m.AddField("huge", 1e200) // out_of_range, not tracked
	}
	a.ids[m] = ids
	return m
}

// add appends to the buffer; a full buffer drops its oldest metric, as
// Telegraf's does.
func (a *agent) add(m telegraf.Metric) {
	if len(a.buf) == a.run.cfg.bufferLimit {
		a.dropped(a.buf[0], "overflow")
		a.buf = a.buf[1:]
	}
	a.buf = append(a.buf, m)
}

func (a *agent) dropped(m telegraf.Metric, why string) {
	for _, id := range a.ids[m] {
		a.run.byID[id].agentDropped = why
	}
	delete(a.ids, m)
}

// reserialize round-trips m through the influx line protocol, as the disk
// buffer does: a new metric object with the same content.
func (a *agent) reserialize(m telegraf.Metric) telegraf.Metric {
	b, err := a.ser.Serialize(m)
	if err != nil {
		return m
	}
	out, err := a.parser.Parse(b)
	if err != nil || len(out) != 1 {
		return m
	}
	a.ids[out[0]] = a.ids[m]
	delete(a.ids, m)
	return out[0]
}

// flush is RunningOutput.Write: batches of the oldest metrics until the
// buffer is empty or a Write fails; a failed batch stays at the front.
func (a *agent) flush() {
	cfg := a.run.cfg
	for range len(a.buf)/cfg.batch + 1 {
		if len(a.buf) == 0 {
			return
		}
		n := min(cfg.batch, len(a.buf))
		if cfg.disk {
			for i := range n {
				a.buf[i] = a.reserialize(a.buf[i])
			}
		}
		batch := slices.Clone(a.buf[:n])
		a.writeN++
		for _, m := range batch {
			for _, id := range a.ids[m] {
				t := a.run.byID[id]
				t.writes = append(t.writes, a.writeN)
			}
		}
		a.srv.SetWrite(a.writeN, a.instance)
		w := simWrite{n: a.writeN, instance: a.instance, start: time.Now(), metrics: n}
		w.err = a.plugin.Write(batch)
		w.end = time.Now()
		a.run.writes = append(a.run.writes, w)
		if w.err != nil {
			return
		}
		for _, m := range a.buf[:n] {
			delete(a.ids, m)
		}
		a.buf = a.buf[n:]
	}
}

// simLog is the plugin's logger: every line is kept for the leak check.
type simLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *simLog) addf(level, format string, args ...any) {
	line := level + " " + fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

func (l *simLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (*simLog) Level() telegraf.LogLevel         { return telegraf.Info }
func (*simLog) AddAttribute(string, any)         {}
func (l *simLog) Errorf(format string, a ...any) { l.addf("E!", format, a...) }
func (l *simLog) Error(a ...any)                 { l.addf("E!", "%s", fmt.Sprint(a...)) }
func (l *simLog) Warnf(format string, a ...any)  { l.addf("W!", format, a...) }
func (l *simLog) Warn(a ...any)                  { l.addf("W!", "%s", fmt.Sprint(a...)) }
func (l *simLog) Infof(format string, a ...any)  { l.addf("I!", format, a...) }
func (l *simLog) Info(a ...any)                  { l.addf("I!", "%s", fmt.Sprint(a...)) }
func (l *simLog) Debugf(format string, a ...any) { l.addf("D!", format, a...) }
func (l *simLog) Debug(a ...any)                 { l.addf("D!", "%s", fmt.Sprint(a...)) }
func (l *simLog) Tracef(format string, a ...any) { l.addf("T!", format, a...) }
func (l *simLog) Trace(a ...any)                 { l.addf("T!", "%s", fmt.Sprint(a...)) }

// simSeedCount is how many seeds TestSimulation runs.
func simSeedCount() int {
	if *simSeeds > 0 {
		return *simSeeds
	}
	if n, err := strconv.Atoi(os.Getenv("SIM_SEEDS")); err == nil && n > 0 {
		return n
	}
	switch {
	case raceEnabled:
		return 300
	case testing.Short():
		return 1000
	}
	return 10_000
}

// warmUpOutsideBubbles starts what must not belong to any one bubble:
// memguard, behind Telegraf's secrets, starts a goroutine on first use that
// lives for the rest of the process.
func warmUpOutsideBubbles(t *testing.T) {
	t.Helper()
	s := config.NewSecret([]byte(simToken))
	b, err := s.Get()
	if err != nil {
		t.Fatal(err)
	}
	b.Destroy()
	s.Destroy()
}

// unprotectedSecrets makes the secrets created until the test ends plain
// memory, as Telegraf's --unprotected does: memguard's locked pages cost
// half of a seed's time in system calls, and the plugin reads its secrets
// the same way either way. Secrets already created keep their kind. Only for
// a test that is not parallel: the setting is process-wide.
func unprotectedSecrets(t *testing.T) {
	t.Helper()
	config.DisableSecretProtection()
	t.Cleanup(config.EnableSecretProtection)
}

// simKnownBugSeeds: every known bug shows in a run of this many seeds (the
// rarest, dup-api-switch, in about 0.3% of them), so a run this long that
// no longer shows one means it was fixed.
const simKnownBugSeeds = 10_000

// simOutcome is one seed's verdict.
type simOutcome struct {
	seed       uint64
	violations []violation
	stats      simStats
	err        error
}

// checkSeed runs one seed in a bubble and checks it. A bubble that
// deadlocks (a Write that never returns) is a violation too.
func checkSeed(t *testing.T, seed uint64) (out simOutcome) {
	out.seed = seed
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			out.violations = append(out.violations, violation{kind: "deadlock", detail: fmt.Sprint(r) + string(buf)})
		}
	}()
	synctest.Test(t, func(*testing.T) {
		run, err := runSeed(seed)
		if err != nil {
			out.err = err
			return
		}
		out.violations, out.stats = check(run)
		if *simSeed >= 0 {
			t.Log(describe(run))
		}
	})
	return out
}

func TestSimulation(t *testing.T) {
	warmUpOutsideBubbles(t)
	unprotectedSecrets(t)
	first, n := *simFirst, simSeedCount()
	if *simSeed >= 0 {
		first, n = uint64(*simSeed), 1
	}
	var (
		next  atomic.Uint64
		mu    sync.Mutex
		tally = newSimTally()
	)
	next.Store(first)
	last := first + uint64(n)
	workers := runtime.GOMAXPROCS(0)
	began := time.Now()
	t.Run("workers", func(t *testing.T) {
		for w := range workers {
			t.Run(strconv.Itoa(w), func(t *testing.T) {
				t.Parallel()
				for {
					seed := next.Add(1) - 1
					if seed >= last {
						return
					}
					out := checkSeed(t, seed)
					mu.Lock()
					tally.add(out)
					done := tally.stats.seeds
					mu.Unlock()
					if *simVerbose {
						t.Logf("seed %d: %s", seed, out.stats)
					}
					if n >= 100_000 && done%(n/10) == 0 {
						t.Logf("%d of %d seeds in %s", done, n, time.Since(began).Round(time.Second))
					}
				}
			})
		}
	})
	t.Logf("%d seeds in %s: %s", n, time.Since(began).Round(time.Millisecond), tally.stats)
	tally.report(t, n)
}

// simTally gathers the seeds' verdicts in bounded memory: the counts, the
// first seeds of each known bug, and the failing seeds' details up to a
// limit.
type simTally struct {
	stats   simStats
	known   map[string][]uint64 // the smallest seeds, at most 5
	counts  map[string]int
	failing []simOutcome // at most maxFailing, the smallest seeds
	failed  int
}

const maxFailing = 20

func newSimTally() *simTally {
	return &simTally{known: map[string][]uint64{}, counts: map[string]int{}}
}

func (st *simTally) add(out simOutcome) {
	st.stats.add(out.stats)
	var unknown []violation
	counted := map[string]bool{}
	for _, v := range out.violations {
		if _, known := simKnownBugs[v.kind]; !known || *simStrict {
			unknown = append(unknown, v)
			continue
		}
		if !counted[v.kind] {
			counted[v.kind] = true
			st.counts[v.kind]++
			st.known[v.kind] = smallest(st.known[v.kind], out.seed, 5)
		}
	}
	if out.err == nil && len(unknown) == 0 {
		return
	}
	st.failed++
	out.violations = unknown
	st.failing = append(st.failing, out)
	slices.SortFunc(st.failing, func(a, b simOutcome) int { return cmp.Compare(a.seed, b.seed) })
	st.failing = st.failing[:min(len(st.failing), maxFailing)]
}

// smallest inserts seed into the sorted list, keeping at most n.
func smallest(list []uint64, seed uint64, n int) []uint64 {
	i, _ := slices.BinarySearch(list, seed)
	list = slices.Insert(list, i, seed)
	return list[:min(len(list), n)]
}

// report fails the test for every violation that is not a known bug, and,
// in a run of at least simKnownBugSeeds seeds, for every known bug that no
// longer shows: remove it from simKnownBugs, so that the checker enforces it.
func (st *simTally) report(t *testing.T, seeds int) {
	t.Helper()
	for _, r := range st.failing {
		var b strings.Builder
		if r.err != nil {
			fmt.Fprintf(&b, "\n  %v", r.err)
		}
		for i, v := range r.violations {
			if i == 5 {
				fmt.Fprintf(&b, "\n  … and %d more", len(r.violations)-i)
				break
			}
			fmt.Fprintf(&b, "\n  %s: %s", v.kind, v.detail)
		}
		t.Errorf("seed %d:%s\n  reproduce: %s", r.seed, b.String(), reproduce(r.seed))
	}
	if st.failed > len(st.failing) {
		t.Errorf("… %d more failing seeds", st.failed-len(st.failing))
	}
	for _, kind := range slices.Sorted(maps.Keys(simKnownBugs)) {
		if n := st.counts[kind]; n > 0 {
			t.Logf("known bug %q in %d seed(s), first %v: %s", kind, n, st.known[kind], simKnownBugs[kind])
		}
	}
	if seeds < simKnownBugSeeds || *simStrict {
		return
	}
	for _, kind := range slices.Sorted(maps.Keys(simKnownBugs)) {
		if st.counts[kind] == 0 && !simRareKnownBugs[kind] {
			t.Errorf("known bug %q no longer shows in %d seeds: remove it from simKnownBugs (sim_check_test.go) "+
				"so that the checker enforces it", kind, seeds)
		}
	}
}

func reproduce(seed uint64) string {
	return fmt.Sprintf("go test -run 'TestSimulation$' -sim.seed=%d .", seed)
}

// TestSimulationReplays runs seeds twice and compares their histories: the
// same seed replays the same configuration, schedule, metrics and answers.
// Two sources of difference are left in the plugin: its backoff jitter draws
// from math/rand/v2's global source, and with concurrent_writes > 1 its
// goroutines race for the same virtual instant (which batch takes the first
// pacing slot, which failure stops the flush first). A seed with one request
// in flight and no transient failure (so no backoff) must replay exactly;
// the others are counted. A seeded jitter source injected into the delivery
// core would remove the first.
func TestSimulationReplays(t *testing.T) {
	warmUpOutsideBubbles(t)
	n := 200
	if raceEnabled || testing.Short() {
		n = 50
	}
	exact, jittered := 0, 0
	for seed := uint64(1); seed <= uint64(n); seed++ {
		var digests [2]string
		racy := false
		for i := range digests {
			synctest.Test(t, func(t *testing.T) {
				run, err := runSeed(seed)
				if err != nil {
					t.Fatal(err)
				}
				digests[i] = digest(run)
				racy = racy || run.cfg.concurrency > 1 || slices.ContainsFunc(run.ops, transientAnswer)
			})
		}
		switch {
		case digests[0] == digests[1]:
			exact++
		case racy:
			jittered++
		default:
			t.Errorf("seed %d replays differently with one request in flight and no backoff\n  reproduce: %s", seed, reproduce(seed))
		}
	}
	t.Logf("%d of %d seeds replay exactly; %d differ (concurrent requests racing at one virtual instant)", exact, n, jittered)
}

// transientAnswer: an answer after which the plugin backs off.
func transientAnswer(op *simlibrato.Op) bool {
	return op.Status == 0 || op.Status == 429 || op.Status >= 500 || op.Status == 403 && strings.Contains(strings.ToLower(string(op.Answer)), "api limit")
}

// digest is a run's history in a comparable form.
func digest(run *simRun) string {
	// Requests sent at the same instant by concurrent goroutines are not
	// ordered: compare them as a set.
	lines := make([]string, 0, len(run.ops))
	for _, op := range run.ops {
		lines = append(lines, fmt.Sprintf("%d %d %s %s %v %d %v %s", op.Write, op.Instance, op.SentAt.Format(time.StampNano), op.Path,
			op.Measurements, op.Status, op.Stored, op.Fault))
	}
	slices.Sort(lines)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "|")
	}
	for _, w := range run.writes {
		// Whether it failed, not the wording: two deadlines at one instant
		// (the client's timeout, the flush's) may win either way.
		fmt.Fprintf(&b, "%d %s %v|", w.n, w.end.Sub(w.start), w.err != nil)
	}
	return b.String()
}

// TestSimulationMemory: after a long run whose metrics carry large, unique
// tags and collapse into shared series (the collision finder's work), what
// the plugin still holds (its caches, buffers and screens) stays within the
// README's bound at default settings.
func TestSimulationMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a long run: not with -short or -race")
	}
	warmUpOutsideBubbles(t)
	const bound = 36 << 20 // the README's bound at default settings
	if retained := retainedAfterRun(t, 64<<10); retained > bound {
		t.Errorf("the plugin retains %.1f MiB after the run, more than %d MiB", float64(retained)/(1<<20), bound>>20)
	}
}

// retainedAfterRun runs a long seed whose metrics carry tags of tagBytes,
// and returns the heap the plugin still holds after it.
func retainedAfterRun(t *testing.T, tagBytes int) int64 {
	t.Helper()
	var before, after uint64
	var measurements int
	synctest.Test(t, func(t *testing.T) {
		before = heapAfterGC()
		run, plugin, err := simulate(7, func(c *simConfig) {
			c.steps, c.metricsPerStep, c.batch, c.bufferLimit = 8, 1000, 1000, 20000
			c.perReq, c.restartChance, c.bigTags, c.manyNames = 300, 0, tagBytes, 10
			c.api, c.maxNewSeries, c.disk = apiLegacy, 0, false
		})
		if err != nil {
			t.Fatal(err)
		}
		measurements = len(run.truths)
		// run is dead from here: its history is not counted.
		after = heapAfterGC()
		runtime.KeepAlive(plugin)
	})
	retained := int64(after) - int64(before)
	t.Logf("%d measurements with %d KiB tags: the plugin retains %.1f MiB after the run", measurements, tagBytes>>10,
		float64(retained)/(1<<20))
	return retained
}

func heapAfterGC() uint64 {
	runtime.GC() //nolint:revive // measuring what stays reachable needs a collection
	runtime.GC() //nolint:revive // and a second one for what finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// seededJitter is the back-off's random source for one plugin instance of a
// seed, so that a seed replays its waits. Requests retry from several
// goroutines, hence the lock.
func seededJitter(seed, instance uint64) func() float64 {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, instance))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64()
	}
}
