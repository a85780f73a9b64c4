//go:build integration

package integration

import (
	"fmt"
	"maps"
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

// These tests stop agents during an outage and start them again, then count
// every numbered measurement (inputs.mock step series, one metric name per
// agent run so that runs never share a value):
//
//   - TestSoakDiskBufferKill9: the custom-built Telegraf with the agent's
//     buffer_strategy = "disk", killed with SIGKILL during an outage;
//   - TestExecdSpoolRestart: a stock Telegraf with outputs.execd running
//     librato-execd with -spool_dir, stopped with SIGTERM during an outage,
//     or librato-execd alone killed with SIGKILL.
//
// Every measurement must arrive. Every extra copy must be explained, and is
// counted by cause: a lost acknowledgement (the previous copy was stored but
// its request never got a 2xx back) or a restart (the previous copy was
// acknowledged to a process that died before it recorded that).

// restartConf is a Telegraf agent with mock step series and either our
// outputs.librato or outputs.execd running librato-execd.
const restartConf = `[agent]
  interval = "{{.Interval}}"
  round_interval = true
  flush_interval = "{{.Flush}}"
  flush_jitter = "0s"
  metric_batch_size = 50
  omit_hostname = true
  debug = true
{{- if .BufferDir}}
  buffer_strategy = "disk"
  buffer_directory = {{printf "%q" .BufferDir}}
{{- end}}
{{range $host := .Hosts}}
[[inputs.mock]]
  metric_name = "{{$.Name}}"
  [inputs.mock.tags]
    host = "{{$host}}"
{{- range $.Fields}}
  [[inputs.mock.step]]
    name = "{{.}}"
    start = 1.0
    step = 1.0
{{- end}}
{{end}}
{{- if .Plugin}}
[[outputs.execd]]
  command = [{{printf "%q" .Plugin}}, "-config", {{printf "%q" .PluginConf}}, "-spool_dir", {{printf "%q" .SpoolDir}}, "-flush_interval", "500ms", "-debug"]
  environment = ["LIBRATO_TOKEN={{.Token}}"]
  restart_delay = "200ms"
  data_format = "influx"
  influx_uint_support = true
{{- else}}
[[outputs.librato]]
  api_user = {{printf "%q" .User}}
  api_token = {{printf "%q" .Token}}
  api_url = {{printf "%q" .URL}}
  timeout = "1s"
  retry_budget = "1s"
  max_retry_after = "1s"
  concurrent_writes = 4
  measurements_per_request = 20
{{- end}}
`

type restartConfData struct {
	Name, Interval, Flush        string
	Hosts, Fields                []string
	BufferDir                    string
	User, Token, URL             string
	Plugin, PluginConf, SpoolDir string
}

// restartAPI is the fake's fault hook: the test switches its mode and the
// epoch (which agent process is the current one); it records every request.
type restartAPI struct {
	mu    sync.Mutex
	mode  string // "up", "down" (503) or "lostack" (stored then reset, or 503)
	epoch int
	reqs  []restartReq
}

type restartReq struct {
	n, epoch      int
	mode          string
	stored, acked bool // as modelled by the hook; "up" is settled from the fake's log
	gauges        []soakKey
}

func (a *restartAPI) set(mode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode = mode
}

func (a *restartAPI) nextEpoch() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.epoch++
}

func (a *restartAPI) fault(n int, rec *fakelibrato.Received) fakelibrato.Action {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := restartReq{n: n, epoch: a.epoch, mode: a.mode}
	for _, g := range rec.Gauges {
		r.gauges = append(r.gauges, soakKey{series: g.Name + "@" + g.Source, value: int64(g.Value), time: g.MeasureTime})
	}
	var act fakelibrato.Action
	switch {
	case a.mode == "down" || (a.mode == "lostack" && n%2 == 1):
		act = fakelibrato.Action{Status: 503, Header: soakHTMLHeader, Body: soakHTML503}
	case a.mode == "lostack":
		// Librato stored it; the answer never arrives.
		act = fakelibrato.Action{Reset: true}
		r.stored = true
	}
	a.reqs = append(a.reqs, r)
	return act
}

// restartCount is the verdict over all requests.
type restartCount struct {
	series                   map[string]*restartSeries
	requests                 int
	stored                   int // copies stored
	delivered                int // distinct measurements stored
	dupLostAck, dupRestart   int
	unexplained              []string
	lostAckSent, notInFakeOK int
}

type restartSeries struct {
	copies map[int64][]restartReq
	times  map[int64]int64
	max    int64
}

// count joins the hook's records with the fake's log (a request without a
// fault is stored when the fake answered it 2xx) and classifies copies.
func (a *restartAPI) count(t *testing.T, fake *fakelibrato.Server) *restartCount {
	t.Helper()
	status := map[int]int{}
	for _, r := range fake.Requests() {
		status[r.N] = r.Status
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &restartCount{series: map[string]*restartSeries{}, requests: len(a.reqs)}
	for _, r := range a.reqs {
		if r.mode == "up" || r.mode == "" {
			st, ok := status[r.n]
			if !ok {
				c.notInFakeOK++
			}
			r.stored, r.acked = st/100 == 2, st/100 == 2
		}
		if !r.stored {
			continue
		}
		if !r.acked {
			c.lostAckSent += len(r.gauges)
		}
		for _, k := range r.gauges {
			s := c.series[k.series]
			if s == nil {
				s = &restartSeries{copies: map[int64][]restartReq{}, times: map[int64]int64{}}
				c.series[k.series] = s
			}
			s.copies[k.value] = append(s.copies[k.value], r)
			s.times[k.value] = k.time
			s.max = max(s.max, k.value)
			c.stored++
		}
	}
	for name, s := range c.series {
		for v, copies := range s.copies {
			c.delivered++
			slices.SortFunc(copies, func(x, y restartReq) int { return x.n - y.n })
			for i := 1; i < len(copies); i++ {
				prev, cur := copies[i-1], copies[i]
				switch {
				case !prev.acked:
					c.dupLostAck++
				case prev.epoch < cur.epoch:
					c.dupRestart++
				default:
					c.unexplained = append(c.unexplained, fmt.Sprintf("%s=%d stored by #%d (epoch %d, acknowledged) and again by #%d (epoch %d)",
						name, v, prev.n, prev.epoch, cur.n, cur.epoch))
				}
			}
		}
	}
	slices.Sort(c.unexplained)
	return c
}

// gaps lists the values missing from 1 to the largest stored of every
// series whose name starts with prefix, and the series' largest time.
func (c *restartCount) gaps(prefix string) (gaps []string, minMaxTime int64, n int) {
	minMaxTime = -1
	for _, name := range slices.Sorted(maps.Keys(c.series)) {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		s := c.series[name]
		n++
		for v := int64(1); v <= s.max; v++ {
			if len(s.copies[v]) == 0 {
				gaps = append(gaps, fmt.Sprintf("%s=%d", name, v))
			}
		}
		if mt := s.times[s.max]; minMaxTime < 0 || mt < minMaxTime {
			minMaxTime = mt
		}
	}
	return gaps, minMaxTime, n
}

// firstStoredInEpoch counts the measurements of the series with prefix
// whose first stored copy came from a process of that epoch or later.
func (c *restartCount) firstStoredInEpoch(prefix string, epoch int) int {
	n := 0
	for name, s := range c.series {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, copies := range s.copies {
			if copies[0].epoch >= epoch {
				n++
			}
		}
	}
	return n
}

// delivered counts the distinct measurements of the series with prefix.
func (c *restartCount) deliveredOf(prefix string) int {
	n := 0
	for name, s := range c.series {
		if strings.HasPrefix(name, prefix) {
			n += len(s.copies)
		}
	}
	return n
}

func (c *restartCount) String() string {
	return fmt.Sprintf("requests %d, copies stored %d, delivered %d, duplicates %d (lost acknowledgement %d, restart %d, unexplained %d), "+
		"measurements in stored but unacknowledged requests %d",
		c.requests, c.stored, c.delivered, c.dupLostAck+c.dupRestart+len(c.unexplained), c.dupLostAck, c.dupRestart,
		len(c.unexplained), c.lostAckSent)
}

// restartAgent runs one agent process with its log kept.
type restartAgent struct {
	cmd    *exec.Cmd
	logs   *soakLineLog
	exited chan error
	done   bool
}

func startRestartAgent(t *testing.T, bin, conf string, logs *soakLineLog) *restartAgent {
	t.Helper()
	a := &restartAgent{logs: logs, exited: make(chan error, 1)}
	a.cmd = exec.Command(bin, "--config", conf)
	a.cmd.Stdout, a.cmd.Stderr = logs, logs
	require.NoError(t, a.cmd.Start())
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		if !a.done {
			killProcess(t, a.cmd.Process)
			<-a.exited
		}
	})
	return a
}

// signal sends sig and waits (bounded) for the exit.
func (a *restartAgent) signal(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	require.NoError(t, a.cmd.Process.Signal(sig))
	select {
	case err := <-a.exited:
		a.done = true
		return err
	case <-time.After(time.Minute):
		t.Fatalf("agent still running a minute after %s\n%s", sig, a.logs)
	}
	return nil
}

// sleepToHalfSecond sleeps to the next x.5 s: half-way between two gathers
// of a 1s round interval, so the last gather before a signal is the one at
// x.0 and has long reached the output's buffer.
func sleepToHalfSecond() time.Time {
	time.Sleep(time.Duration(1500e6-time.Now().Nanosecond()) % time.Second)
	return time.Now()
}

var (
	restartHosts  = []string{"agent-0", "agent-1", "agent-2", "agent-3"}
	restartFields = []string{"seq0", "seq1", "seq2", "seq3", "seq4"}
	// The execd route counts Telegraf metrics against gauges: one field
	// each, 20 metrics per gather.
	execdHosts = func() []string {
		hosts := make([]string, 0, 20)
		for i := range 20 {
			hosts = append(hosts, fmt.Sprintf("agent-%02d", i))
		}
		return hosts
	}()
)

// TestSoakDiskBufferKill9: the custom-built agent with Telegraf's disk
// buffer delivers, loses acknowledgements, meets an outage and is killed
// with SIGKILL during it; a new agent process on the same buffer directory
// (its own series renamed, so the runs never share a value) waits out the
// rest of the outage, the API heals, and it is stopped with SIGTERM.
// Nothing gathered before the kill may be missing.
func TestSoakDiskBufferKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about half a minute")
	}
	bin := telegrafLibrato(t)
	api := &restartAPI{mode: "up"}
	fake := newFake(t, fakelibrato.Options{Fault: api.fault})
	dir := t.TempDir()
	data := restartConfData{
		Interval: "1s", Flush: "1s", Hosts: restartHosts, Fields: restartFields,
		BufferDir: filepath.Join(dir, "buffer"), User: apiUser, Token: apiToken, URL: fake.LegacyURL(),
	}
	data.Name = "run1"
	conf1 := writeFile(t, dir, "run1.conf", restartConf, data)
	data.Name = "run2"
	conf2 := writeFile(t, dir, "run2.conf", restartConf, data)
	logs := &soakLineLog{}
	if p := os.Getenv("SOAK_AGENT_LOG"); p != "" {
		t.Cleanup(func() { require.NoError(t, os.WriteFile(p, []byte(logs.text()), 0o600)) })
	}

	first := startRestartAgent(t, bin, conf1, logs)
	eventually(t, time.Minute, "the first deliveries", func() bool { return len(fake.Gauges()) >= 60 }, logs)
	time.Sleep(2 * time.Second)
	api.set("lostack")
	time.Sleep(3 * time.Second)
	api.set("down")
	time.Sleep(2 * time.Second)
	killed := sleepToHalfSecond()
	require.Error(t, first.signal(t, syscall.SIGKILL), "SIGKILL")
	api.nextEpoch()

	second := startRestartAgent(t, bin, conf2, logs)
	time.Sleep(3 * time.Second) // still down: the restarted agent retries from its disk buffer
	api.set("up")
	lastFirst := killed.Unix() - 1 // one tick of slack for a delayed gather
	eventually(t, 2*time.Minute, "the first run's measurements", func() bool {
		gaps, maxTime, n := api.count(t, fake).gaps("run1.")
		return n == len(restartHosts)*len(restartFields) && len(gaps) == 0 && maxTime >= lastFirst
	}, logs)
	time.Sleep(2 * time.Second)
	stopped := sleepToHalfSecond()
	require.NoError(t, second.signal(t, syscall.SIGTERM), "exit after SIGTERM\n%s", logs)

	c := api.count(t, fake)
	gaps1, max1, n1 := c.gaps("run1.")
	gaps2, max2, n2 := c.gaps("run2.")
	fromBuffer := c.firstStoredInEpoch("run1.", 1)
	t.Logf("disk buffer, kill -9 in an outage: run 1 gathered %d measurements in %d series up to %s (kill at %s), "+
		"%d of them first stored by the restarted agent from the disk buffer; run 2 %d up to %s (SIGTERM at %s); %s; lost %d",
		c.deliveredOf("run1.")+len(gaps1), n1, time.Unix(max1, 0).Format(time.TimeOnly), killed.Format(time.TimeOnly), fromBuffer,
		c.deliveredOf("run2.")+len(gaps2), time.Unix(max2, 0).Format(time.TimeOnly), stopped.Format(time.TimeOnly), c, len(gaps1)+len(gaps2))
	require.Zero(t, c.notInFakeOK, "every request reaches the fake's log")
	require.Positive(t, fromBuffer, "the outage's backlog must come back from the disk buffer")
	require.Equal(t, len(restartHosts)*len(restartFields), n1)
	require.Equal(t, len(restartHosts)*len(restartFields), n2)
	require.Empty(t, gaps1, "lost from the run killed with SIGKILL")
	require.Empty(t, gaps2, "lost from the run stopped with SIGTERM")
	require.GreaterOrEqual(t, max1, lastFirst, "the gathers just before the kill arrived")
	require.GreaterOrEqual(t, max2, stopped.Unix()-1, "the gathers just before SIGTERM arrived")
	require.Empty(t, c.unexplained, "duplicates neither a lost acknowledgement nor a restart explains")
	require.Contains(t, logs.text(), "disk-write-through buffer strategy", "the agent used the disk buffer")
}

var execdResumed = regexp.MustCompile(`(\d+) metric\(s\) from before the restart are sent first`)

var execdWroteBatch = regexp.MustCompile(`\[outputs\.execd\] Wrote batch of (\d+) metrics`)

// execdWritten sums what Telegraf handed to outputs.execd (its debug log):
// Telegraf counts those delivered.
func execdWritten(t *testing.T, logs *soakLineLog) int {
	t.Helper()
	n := 0
	for _, l := range logs.snapshot() {
		if m := execdWroteBatch.FindStringSubmatch(l.text); m != nil {
			k, err := strconv.Atoi(m[1])
			require.NoError(t, err, l.text)
			n += k
		}
	}
	return n
}

// execdDeadPipe sums what Telegraf handed to outputs.execd from log line
// from on until it saw librato-execd's exit: lines written into the pipe of
// a process that will never read them, which the README names as what a
// kill -9 can lose ("lines Telegraf had written into the pipe that
// librato-execd had not read"). Telegraf, paused during the kill, may flush
// into that pipe as soon as it resumes, before it notices the exit.
func execdDeadPipe(t *testing.T, logs *soakLineLog, from int) int {
	t.Helper()
	n := 0
	for _, l := range logs.snapshot()[from:] {
		if strings.Contains(l.text, "[outputs.execd] Process") && strings.Contains(l.text, "exited") {
			return n
		}
		if m := execdWroteBatch.FindStringSubmatch(l.text); m != nil {
			k, err := strconv.Atoi(m[1])
			require.NoError(t, err, l.text)
			n += k
		}
	}
	return n
}

// childPID finds the process whose parent is ppid and whose name is comm.
func childPID(t *testing.T, ppid int, comm string) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		var pid, parent int
		var state string
		if _, err := fmt.Sscanf(s[:open], "%d", &pid); err != nil {
			continue
		}
		if _, err := fmt.Sscanf(s[closing+1:], " %s %d", &state, &parent); err != nil {
			continue
		}
		// comm is cut to 15 characters.
		if parent == ppid && strings.HasPrefix(comm, s[open+1:closing]) {
			return pid
		}
	}
	return 0
}

// TestExecdSpoolRestart: the execd route with librato-execd's spool. The
// endpoint goes down; then either Telegraf is stopped with SIGTERM (it
// closes librato-execd's stdin and SIGKILLs it 5 s later, during the final
// flush's retries) and started again, or librato-execd alone is killed with
// SIGKILL and outputs.execd restarts it. The endpoint heals and Telegraf is
// stopped: everything Telegraf handed to outputs.execd must have arrived.
//
// Before the SIGKILL Telegraf is paused (SIGSTOP) until librato-execd has
// flushed twice more: lines still in the pipe when librato-execd dies were
// never read, and the count of what Telegraf handed over would not be exact.
func TestExecdSpoolRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about half a minute")
	}
	telegraf, plugin := telegrafExecd(t), libratoExecd(t)
	for _, how := range []string{"sigterm", "kill9"} {
		t.Run(how, func(t *testing.T) {
			api := &restartAPI{mode: "up"}
			fake := newFake(t, fakelibrato.Options{Fault: api.fault})
			dir := t.TempDir()
			data := restartConfData{
				Interval: "1s", Flush: "1s", Hosts: execdHosts, Fields: []string{"seq"},
				User: apiUser, Token: apiToken, URL: fake.LegacyURL(), Plugin: plugin, SpoolDir: filepath.Join(dir, "spool"),
			}
			data.PluginConf = writeFile(t, dir, "librato-plugin.conf", pluginConf, data)
			data.Name = "run1"
			conf1 := writeFile(t, dir, "run1.conf", restartConf, data)
			data.Name = "run2"
			conf2 := writeFile(t, dir, "run2.conf", restartConf, data)
			logs := &soakLineLog{}

			agent := startRestartAgent(t, telegraf, conf1, logs)
			eventually(t, time.Minute, "the first deliveries", func() bool { return len(fake.Gauges()) >= 20 }, logs)
			api.set("down")
			writtenAtOutage := execdWritten(t, logs)
			eventually(t, time.Minute, "100 metrics handed to outputs.execd during the outage", func() bool {
				return execdWritten(t, logs)-writtenAtOutage >= 100
			}, logs)

			// writtenBefore: what Telegraf handed over before the stop;
			// deadPipe: what it wrote into the killed process's pipe.
			var writtenBefore, deadPipe, killedAt int
			switch how {
			case "sigterm":
				require.NoError(t, agent.signal(t, syscall.SIGTERM), "telegraf exit after SIGTERM\n%s", logs)
				writtenBefore = execdWritten(t, logs)
				api.nextEpoch()
				agent = startRestartAgent(t, telegraf, conf2, logs)
			case "kill9":
				pid := childPID(t, agent.cmd.Process.Pid, "librato-execd")
				require.NotZero(t, pid, "librato-execd's pid")
				require.NoError(t, agent.cmd.Process.Signal(syscall.SIGSTOP))
				// librato-execd reads the pipe as soon as lines arrive;
				// two seconds leave it ample time to spool the last ones.
				time.Sleep(2 * time.Second)
				writtenBefore = execdWritten(t, logs)
				killedAt = len(logs.snapshot())
				require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
				eventually(t, time.Minute, "librato-execd to die", func() bool {
					// Gone, or a zombie until outputs.execd reaps it.
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
					return err != nil || strings.Contains(string(b), ") Z ")
				}, logs)
				api.nextEpoch()
				require.NoError(t, agent.cmd.Process.Signal(syscall.SIGCONT))
			}
			eventually(t, time.Minute, "librato-execd to resume from its spool", func() bool {
				return strings.Contains(logs.text(), "from before the restart are sent first")
			}, logs)
			if how == "kill9" {
				deadPipe = execdDeadPipe(t, logs, killedAt)
			}
			time.Sleep(time.Second) // still down after the restart
			api.set("up")
			eventually(t, time.Minute, "the backlog delivered", func() bool {
				c := api.count(t, fake)
				gaps, _, n := c.gaps("run1.")
				return n > 0 && len(gaps) <= deadPipe && c.deliveredOf("run1.") >= writtenBefore
			}, logs)
			require.NoError(t, agent.signal(t, syscall.SIGTERM), "telegraf exit after SIGTERM\n%s", logs)

			c := api.count(t, fake)
			written := execdWritten(t, logs)
			gaps1, _, _ := c.gaps("run1.")
			gaps2, _, _ := c.gaps("run2.")
			resumed := ""
			if m := execdResumed.FindStringSubmatch(logs.text()); m != nil {
				resumed = m[1]
			}
			t.Logf("execd route, %s during an outage: Telegraf handed %d metrics to outputs.execd in all, %d of them during the outage "+
				"before the stop; the restarted librato-execd found %s in its spool; %s; lost %d, of them written into the killed process's pipe %d",
				how, written, writtenBefore-writtenAtOutage, resumed, c, written-c.delivered, deadPipe)
			require.LessOrEqual(t, len(gaps1), deadPipe, "gaps only where lines went into the killed process's pipe: %v", gaps1)
			require.Empty(t, gaps2)
			require.Empty(t, c.unexplained, "duplicates neither a lost acknowledgement nor a restart explains")
			require.Equal(t, written-deadPipe, c.delivered,
				"every metric Telegraf handed to outputs.execd arrived, but for those written into the killed process's pipe\n%s", logs)
			require.Zero(t, c.notInFakeOK)
		})
	}
}
