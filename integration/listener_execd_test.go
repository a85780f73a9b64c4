//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/listener"
)

// listenerPluginConf is librato-execd's config for the listener round trip.
const listenerPluginConf = `[[outputs.librato]]
  api_user = {{printf "%q" .User}}
  api_token = "${LIBRATO_TOKEN}"
  api_url = {{printf "%q" .URL}}
  api = {{printf "%q" .API}}
  ## Several requests per flush.
  measurements_per_request = 100
`

// TestListenerRoundTripExecd is issue 18's round trip through librato-execd:
// line protocol on its stdin, outputs.librato (with the on-disk spool) behind
// it, inputs.librato_listener (in process) as its Librato. Every gauge comes
// out once, with the same name and source (legacy) or tags as Librato
// compares them (tagged: lower-cased), also when the listener answers 503
// first (its outputs rejected the metrics) and librato-execd retries. When
// the first acknowledgement is lost (stored, but librato-execd sees a 503),
// only that request's gauges come out twice.
func TestListenerRoundTripExecd(t *testing.T) {
	plugin := libratoExecd(t)
	for _, api := range []string{"legacy", "tagged"} {
		for _, f := range []execdFault{execdNoFault, execdReject503, execdLoseFirstAck} {
			t.Run(api+"/"+f.String(), func(t *testing.T) {
				execdRoundTrip(t, plugin, api, f)
			})
		}
	}
}

type execdFault int

const (
	execdNoFault      execdFault = iota
	execdReject503               // the outputs reject the first two requests: 503, nothing stored
	execdLoseFirstAck            // the first request is stored, its answer replaced by a 503
)

func (f execdFault) String() string {
	return [...]string{"no fault", "first requests 503", "first ack lost"}[f]
}

// deliveringAcc is a tracking accumulator whose "outputs" decide at once:
// each group is accepted (kept) or, as reject says, rejected, so the
// listener answers 200/202 or 503 without waiting for a flush.
type deliveringAcc struct {
	testutil.Accumulator
	delivered chan telegraf.DeliveryInfo
	reject    func(n int) bool // whether the n-th group (from 0) is rejected

	mu       sync.Mutex
	groups   int
	rejected int
	kept     []telegraf.Metric
}

func (a *deliveringAcc) WithTracking(n int) telegraf.TrackingAccumulator {
	a.delivered = make(chan telegraf.DeliveryInfo, n)
	return a
}

func (a *deliveringAcc) Delivered() <-chan telegraf.DeliveryInfo { return a.delivered }

func (a *deliveringAcc) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	a.mu.Lock()
	n := a.groups
	a.groups++
	reject := a.reject != nil && a.reject(n)
	if reject {
		a.rejected++
	} else {
		a.kept = append(a.kept, group...)
	}
	a.mu.Unlock()
	tracked, id := metric.WithGroupTracking(group, func(info telegraf.DeliveryInfo) { a.delivered <- info })
	for _, m := range tracked {
		if reject {
			m.Reject()
		} else {
			m.Accept()
		}
	}
	return id
}

func (a *deliveringAcc) metrics() []telegraf.Metric {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]telegraf.Metric(nil), a.kept...)
}

func (a *deliveringAcc) counts() (groups, rejected int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.groups, a.rejected
}

func execdRoundTrip(t *testing.T, plugin, api string, f execdFault) {
	acc := &deliveringAcc{}
	if f == execdReject503 {
		acc.reject = func(n int) bool { return n < 2 }
	}
	l := listener.New()
	l.ServiceAddress = "127.0.0.1:0"
	l.Log = testutil.Logger{Quiet: true}
	l.BasicUsername = config.NewSecret([]byte(apiUser))
	l.BasicPassword = config.NewSecret([]byte(apiToken))
	require.NoError(t, l.Init())
	require.NoError(t, l.Start(acc))
	t.Cleanup(l.Stop)

	path := "/v1/metrics"
	if api == "tagged" {
		path = "/v1/measurements"
	}
	url := "http://" + l.Addr().String() + path

	var (
		ackMu       sync.Mutex
		firstStored []telegraf.Metric
		lostAcks    int
	)
	if f == execdLoseFirstAck {
		// A proxy that loses the first 2xx answer. It passes one request
		// at a time, so the metrics that request stored are known.
		first := true
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ackMu.Lock()
			defer ackMu.Unlock()
			before := len(acc.metrics())
			rec := httptest.NewRecorder()
			l.ServeHTTP(rec, r)
			if first && rec.Code/100 == 2 {
				first = false
				lostAcks++
				firstStored = acc.metrics()[before:]
				http.Error(w, `{"errors":{"system":["lost"]}}`, http.StatusServiceUnavailable)
				return
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes()) // a broken answer is retried too
		}))
		t.Cleanup(proxy.Close)
		url = proxy.URL + path
	}

	dir := t.TempDir()
	conf := writeFile(t, dir, "librato-plugin.conf", listenerPluginConf,
		map[string]string{"User": apiUser, "URL": url, "API": api})
	cmd := exec.Command(plugin, "-config", conf, "-flush_interval", "200ms", "-batch_size", "250",
		"-spool_dir", filepath.Join(dir, "spool"))
	cmd.Env = append(os.Environ(), "LIBRATO_TOKEN="+apiToken)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { killProcess(t, cmd.Process) })

	// n lines over several hosts (mixed case, as agents send them) and
	// measurements, a few fields each, each line its own second: every
	// gauge is a distinct series point.
	const n = 400
	const t0 = int64(1_700_000_000)
	hosts := []string{"Web-1", "web-2", "DB-Primary", "cache-3", "Edge-EU-1"}
	measurements := []string{"cpu", "mem", "disk"}
	fields := []string{"usage_a", "usage_b", "usage_c"}
	var want []string
	w := bufio.NewWriter(stdin)
	for i := range n {
		host, name := hosts[i%len(hosts)], measurements[i%len(measurements)]
		ts := t0 + int64(i)
		var fs []string
		for j, field := range fields {
			v := float64(i*len(fields)+j) + 0.25
			fs = append(fs, field+"="+strconv.FormatFloat(v, 'g', -1, 64))
			var tags []*telegraf.Tag
			if api == "legacy" {
				tags = []*telegraf.Tag{{Key: "source", Value: host}}
			} else {
				tags = []*telegraf.Tag{{Key: "host", Value: host}}
			}
			want = append(want, execdSeriesKey(api, name+"."+field, tags, v, ts))
		}
		_, err := fmt.Fprintf(w, "%s,host=%s %s %d\n", name, host, strings.Join(fs, ","), ts*1e9)
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, stdin.Close())

	select {
	case err := <-exited:
		require.NoError(t, err, "librato-execd exit\n%s", &stderr)
	case <-time.After(time.Minute):
		t.Fatalf("librato-execd did not exit after stdin closed\n%s", &stderr)
	}

	key := func(m telegraf.Metric) string {
		v, ok := m.GetField("value")
		require.True(t, ok, "%v has no value field", m)
		if api == "legacy" {
			for _, tag := range m.TagList() {
				require.Equal(t, "source", tag.Key, "%v", m)
			}
		}
		return execdSeriesKey(api, m.Name(), m.TagList(), v, m.Time().Unix())
	}
	var got []string
	for _, m := range acc.metrics() {
		got = append(got, key(m))
	}
	// Duplicates may come only from the lost acknowledgement: take one copy
	// of each of its gauges out, then every gauge must be there once.
	ackMu.Lock()
	dups := firstStored
	ackMu.Unlock()
	if f == execdLoseFirstAck {
		require.Equal(t, 1, lostAcks, "an acknowledgement was lost\n%s", &stderr)
		require.NotEmpty(t, dups)
	}
	for _, m := range dups {
		k := key(m)
		i := slices.Index(got, k)
		require.GreaterOrEqual(t, i, 0, k)
		got = slices.Delete(got, i, i+1)
	}
	groups, rejected := acc.counts()
	if f == execdReject503 {
		require.Equal(t, 2, rejected, "the listener answered 503 twice\n%s", &stderr)
	}
	sort.Strings(want)
	sort.Strings(got)
	require.Len(t, want, n*len(fields))
	require.Equal(t, strings.Join(want, "\n"), strings.Join(got, "\n"), "every gauge exactly once\n%s", &stderr)
	t.Logf("%s/%s: %d lines, %d gauges sent, %d stored (%d duplicates from a lost ack); %d requests reached the outputs, %d rejected (503), %d acks lost",
		api, f, n, len(want), len(acc.metrics()), len(dups), groups, rejected, lostAcks)
}

// execdSeriesKey is a gauge as Librato tells gauges apart.
func execdSeriesKey(api, name string, tags []*telegraf.Tag, value any, ts int64) string {
	var b strings.Builder
	b.WriteString(name)
	for _, tag := range tags {
		k, v := tag.Key, tag.Value
		if api == "tagged" {
			k, v = strings.ToLower(k), strings.ToLower(v)
		}
		fmt.Fprintf(&b, ",%s=%s", k, v)
	}
	fmt.Fprintf(&b, " %v %d", value, ts)
	return b.String()
}
