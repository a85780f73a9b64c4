package listener

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// receiveTime is the fixed receive time of every test listener: tests never
// depend on the real date.
var receiveTime = time.Unix(1700000000, 0)

// ackAcc is an accumulator whose "outputs" decide at once: each tracking
// group is accepted (recorded) or rejected as policy says, inside
// AddTrackingMetricGroup, before the handler registers its wait, which is
// the earliest a report can arrive.
type ackAcc struct {
	testutil.Accumulator
	delivered chan telegraf.DeliveryInfo
	// reject, when set, says whether the n-th group (from 0) is rejected.
	reject func(n int) bool
	// discard keeps nothing (benchmarks).
	discard bool

	mu     sync.Mutex
	groups int
	kept   []telegraf.Metric
}

func (a *ackAcc) WithTracking(n int) telegraf.TrackingAccumulator {
	a.delivered = make(chan telegraf.DeliveryInfo, n)
	return a
}

func (a *ackAcc) Delivered() <-chan telegraf.DeliveryInfo { return a.delivered }

func (a *ackAcc) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	a.mu.Lock()
	n := a.groups
	a.groups++
	a.mu.Unlock()
	tracked, id := metric.WithGroupTracking(group, func(info telegraf.DeliveryInfo) { a.delivered <- info })
	if a.reject != nil && a.reject(n) {
		for _, m := range tracked {
			m.Reject()
		}
		return id
	}
	if !a.discard {
		a.mu.Lock()
		a.kept = append(a.kept, group...)
		a.mu.Unlock()
	}
	for _, m := range tracked {
		m.Accept()
	}
	return id
}

func (a *ackAcc) metrics() []telegraf.Metric {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]telegraf.Metric(nil), a.kept...)
}

// start runs a listener on a free loopback port; configure adjusts it
// before Init.
func start(t testing.TB, acc telegraf.Accumulator, configure func(*Listener)) *Listener {
	t.Helper()
	l := New()
	l.ServiceAddress = "127.0.0.1:0"
	l.Log = testutil.Logger{Quiet: true}
	l.now = func() time.Time { return receiveTime }
	if configure != nil {
		configure(l)
	}
	require.NoError(t, l.Init())
	require.NoError(t, l.Start(acc))
	t.Cleanup(l.Stop)
	return l
}

func (l *Listener) url(path string) string { return "http://" + l.Addr().String() + path }

type answer struct {
	status int
	body   string
	header http.Header
}

// post sends body with the given headers ("Content-Type" defaults to JSON).
func post(t testing.TB, url string, body []byte, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	a, err := doWith(t, http.DefaultClient, req)
	require.NoError(t, err)
	return a
}

// doWith sends req with client; a transport error (TLS, connection) is
// returned for the test to check.
func doWith(t testing.TB, client *http.Client, req *http.Request) (answer, error) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

// postAsync sends in the background; the answer comes on the channel.
func postAsync(t *testing.T, url string, body []byte) <-chan answer {
	ch := make(chan answer, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			ch <- answer{status: -1, body: err.Error()}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- answer{status: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			ch <- answer{status: -1, body: err.Error()}
			return
		}
		ch <- answer{status: resp.StatusCode, body: string(b)}
	}()
	t.Cleanup(func() { <-finished }) // no goroutine outlives its test
	return ch
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// render prints metrics one per line, sorted, with their type: the golden
// files' format.
func render(ms []telegraf.Metric) string {
	lines := make([]string, 0, len(ms))
	for _, m := range ms {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", typeName(m.Type()), m.Name())
		for _, tag := range m.TagList() {
			fmt.Fprintf(&b, ",%s=%s", tag.Key, tag.Value)
		}
		fields := m.FieldList()
		sort.Slice(fields, func(i, j int) bool { return fields[i].Key < fields[j].Key })
		for i, f := range fields {
			sep := ","
			if i == 0 {
				sep = " "
			}
			fmt.Fprintf(&b, "%s%s=%v", sep, f.Key, f.Value)
		}
		fmt.Fprintf(&b, " %d", m.Time().Unix())
		lines = append(lines, b.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func typeName(t telegraf.ValueType) string {
	switch t {
	case telegraf.Counter:
		return "counter"
	case telegraf.Gauge:
		return "gauge"
	default:
		return "untyped"
	}
}

func secrets(vals ...string) []config.Secret {
	out := make([]config.Secret, 0, len(vals))
	for _, v := range vals {
		out = append(out, config.NewSecret([]byte(v)))
	}
	return out
}
