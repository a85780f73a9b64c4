package listener

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

func TestRegisteredWithDefaults(t *testing.T) {
	creator, ok := inputs.Inputs["librato_listener"]
	require.True(t, ok)
	l, ok := creator().(*Listener)
	require.True(t, ok)
	require.Equal(t, ":8080", l.ServiceAddress)
	require.Equal(t, "source", l.SourceTag)
	require.Equal(t, config.Size(3000000), l.MaxBodySize)
	require.NotEmpty(t, l.SampleConfig())
	var _ telegraf.ServiceInput = l
}

func TestInitRejectsBadSettings(t *testing.T) {
	for name, configure := range map[string]func(*Listener){
		"user without password": func(l *Listener) { l.BasicUsername = config.NewSecret([]byte("u")) },
		"empty token":           func(l *Listener) { l.Tokens = secrets("") },
		"no delivery timeout":   func(l *Listener) { l.DeliveryTimeout = 0 },
		"write before delivery": func(l *Listener) { l.WriteTimeout = config.Duration(time.Second) },
		"no request bound":      func(l *Listener) { l.MaxUndeliveredRequests = 0 },
		"empty source tag":      func(l *Listener) { l.SourceTag = "" },
		"negative max age":      func(l *Listener) { l.MaxAge = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			l := New()
			configure(l)
			require.Error(t, l.Init())
		})
	}
}

// TestGolden: each request body in testdata/golden gives exactly the
// metrics in the .metrics file beside it.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.*")
	require.NoError(t, err)
	ran := 0
	for _, f := range files {
		ext := filepath.Ext(f)
		if ext == ".metrics" {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ext)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			require.NoError(t, err)
			want, err := os.ReadFile(strings.TrimSuffix(f, ext) + ".metrics")
			require.NoError(t, err)
			acc := &ackAcc{}
			l := start(t, acc, nil)
			path, ctype, status := legacyPath, "application/json", http.StatusOK
			if strings.HasPrefix(name, "tagged") {
				path, status = taggedPath, http.StatusAccepted
			}
			if ext == ".form" {
				ctype = "application/x-www-form-urlencoded"
			}
			a := post(t, l.url(path), body, "Content-Type", ctype)
			require.Equal(t, status, a.status, a.body)
			require.Equal(t, string(want), render(acc.metrics()))
			// The same body gzipped gives the same metrics.
			acc.kept = nil
			a = post(t, l.url(path), gzipped(t, body), "Content-Type", ctype, "Content-Encoding", "gzip")
			require.Equal(t, status, a.status, a.body)
			require.Equal(t, string(want), render(acc.metrics()))
		})
		ran++
	}
	require.GreaterOrEqual(t, ran, 6)
}

func TestTaggedAnswerIsSummary(t *testing.T) {
	l := start(t, &ackAcc{}, nil)
	a := post(t, l.url(taggedPath), []byte(`{"tags":{"h":"a"},"measurements":[{"name":"x","value":1},{"name":"y","value":2}]}`))
	require.Equal(t, http.StatusAccepted, a.status)
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	var got struct {
		Measurements struct {
			Summary map[string]int `json:"summary"`
		} `json:"measurements"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &got), a.body)
	require.Equal(t, map[string]int{"total": 2, "accepted": 2, "failed": 0, "filtered": 0}, got.Measurements.Summary)
}

func TestProbe(t *testing.T) {
	l := start(t, &ackAcc{}, func(l *Listener) { l.Tokens = secrets("tok") })
	req, err := http.NewRequest(http.MethodGet, l.url(legacyPath+"?length=1"), nil)
	require.NoError(t, err)
	req.SetBasicAuth("me@example.com", "tok")
	a := do(t, req)
	require.Equal(t, http.StatusOK, a.status)
	require.JSONEq(t, `{"query":{"offset":0,"length":0,"found":0,"total":0},"metrics":[]}`, a.body)

	req.SetBasicAuth("me@example.com", "wrong")
	require.Equal(t, http.StatusUnauthorized, do(t, req).status)
}

// TestErrorAnswers: every error answer, with Librato's error JSON, and
// nothing handed to the outputs.
func TestErrorAnswers(t *testing.T) {
	big := `{"gauges":[{"name":"x","value":1,"source":"` + strings.Repeat("a", 200) + `"}]}`
	cases := []struct {
		name, method, path, ctype, encoding, body string
		status                                    int
		contains                                  string
	}{
		{"unknown path", "POST", "/v1/other", "application/json", "", `{}`, 404, `"request"`},
		{"legacy wrong method", "PUT", legacyPath, "application/json", "", `{}`, 405, `"request"`},
		{"tagged wrong method", "GET", taggedPath, "application/json", "", ``, 405, `"request"`},
		{"legacy content type", "POST", legacyPath, "text/plain", "", `{}`, 415, `Content-Type`},
		{"tagged form", "POST", taggedPath, "application/x-www-form-urlencoded", "", `a=b`, 415, `Content-Type`},
		{"no content type", "POST", legacyPath, "", "", `{}`, 415, `Content-Type`},
		{"deflate", "POST", legacyPath, "application/json", "deflate", `{}`, 415, `Content-Encoding`},
		{"bad gzip", "POST", legacyPath, "application/json", "gzip", `not gzip`, 400, `gzip`},
		{"too large", "POST", legacyPath, "application/json", "", big, 413, `too large`},
		{"legacy not json", "POST", legacyPath, "application/json", "", `{"gauges":`, 400, `errors`},
		{"legacy empty", "POST", legacyPath, "application/json", "", `{}`, 400, `"gauges"`},
		{"legacy bad name", "POST", legacyPath, "application/json", "", `{"gauges":[{"name":"a b","value":1}]}`, 400, `"name"`},
		{"legacy bad source", "POST", legacyPath, "application/json", "", `{"gauges":[{"name":"a","value":1,"source":"all"}]}`, 400, `"source"`},
		{"legacy no value", "POST", legacyPath, "application/json", "", `{"gauges":[{"name":"a"}]}`, 400, `"value"`},
		{"legacy count without sum", "POST", legacyPath, "application/json", "", `{"gauges":[{"name":"a","count":2}]}`, 400, `"sum"`},
		{"legacy zero count", "POST", legacyPath, "application/json", "", `{"gauges":[{"name":"a","count":0,"sum":1}]}`, 400, `"count"`},
		{"legacy negative counter", "POST", legacyPath, "application/json", "", `{"counters":[{"name":"a","value":-1}]}`, 400, `"value"`},
		{"one bad of two stores nothing", "POST", legacyPath, "application/json", "",
			`{"gauges":[{"name":"ok","value":1},{"name":"b@d","value":1}]}`, 400, `"name"`},
		{"tagged not json", "POST", taggedPath, "application/json", "", `[`, 400, ``},
		{"tagged empty", "POST", taggedPath, "application/json", "", `{"measurements":[]}`, 400, `"measurements"`},
		{"tagged no tags", "POST", taggedPath, "application/json", "", `{"measurements":[{"name":"a","value":1}]}`, 400, `"tags"`},
		{"tagged bad tag", "POST", taggedPath, "application/json", "", `{"tags":{"h":"a#b"},"measurements":[{"name":"a","value":1}]}`, 400, `"tags"`},
		{"tagged one bad of two", "POST", taggedPath, "application/json", "",
			`{"tags":{"h":"a"},"measurements":[{"name":"a","value":1},{"name":"b","count":1}]}`, 400, `"sum"`},
	}
	acc := &ackAcc{}
	l := start(t, acc, func(l *Listener) { l.MaxBodySize = 100 })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, l.url(c.path), strings.NewReader(c.body))
			require.NoError(t, err)
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.encoding != "" {
				req.Header.Set("Content-Encoding", c.encoding)
			}
			a := do(t, req)
			require.Equal(t, c.status, a.status, a.body)
			require.Equal(t, "application/json", a.header.Get("Content-Type"))
			require.True(t, json.Valid([]byte(a.body)), a.body)
			require.Contains(t, a.body, c.contains)
		})
	}
	require.Empty(t, acc.metrics(), "a rejected request stores nothing")
}

func TestTimeWindow(t *testing.T) {
	l := start(t, &ackAcc{}, func(l *Listener) { l.MaxAge = config.Duration(time.Hour) })
	old := receiveTime.Add(-2 * time.Hour).Unix()
	a := post(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1,"measure_time":`+itoa(old)+`}]}`))
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Contains(t, a.body, "measure_time")
	a = post(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1,"measure_time":`+itoa(old+3600+60)+`}]}`))
	require.Equal(t, http.StatusOK, a.status, a.body)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestAuth(t *testing.T) {
	body := []byte(`{"gauges":[{"name":"a","value":1}]}`)
	cases := []struct {
		name       string
		user, pass string
		noAuth     bool
		want       int
	}{
		{"user and password", "me@example.com", "s3cret", false, 200},
		{"token as password", "anyone@example.com", "tok-1", false, 200},
		{"second token as user, empty password", "tok-2", "", false, 200},
		{"wrong password", "me@example.com", "nope", false, 401},
		{"password of other user", "other@example.com", "s3cret", false, 401},
		{"token with a password", "tok-1", "x", false, 401},
		{"empty everything", "", "", false, 401},
		{"no credentials", "", "", true, 401},
	}
	acc := &ackAcc{}
	l := start(t, acc, func(l *Listener) {
		l.BasicUsername = config.NewSecret([]byte("me@example.com"))
		l.BasicPassword = config.NewSecret([]byte("s3cret"))
		l.Tokens = secrets("tok-1", "tok-2")
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, l.url(legacyPath), bytes.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			if !c.noAuth {
				req.SetBasicAuth(c.user, c.pass)
			}
			a := do(t, req)
			require.Equal(t, c.want, a.status, a.body)
			if c.want == 401 {
				require.Contains(t, a.body, "Credentials are required")
				require.NotEmpty(t, a.header.Get("WWW-Authenticate"))
			}
		})
	}
	require.Len(t, acc.metrics(), 3)
}

func TestOpenWithoutCredentials(t *testing.T) {
	l := start(t, &ackAcc{}, nil)
	a := post(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1}]}`))
	require.Equal(t, http.StatusOK, a.status, a.body)
}

// TestBodyLimits: max_body_size holds for the body as sent (declared or
// streamed) and for the body after decompression.
func TestBodyLimits(t *testing.T) {
	gauges := make([]string, 0, 40)
	for range 40 {
		gauges = append(gauges, `{"name":"some.metric.name","value":1,"source":"host-1"}`)
	}
	plain := []byte(`{"gauges":[` + strings.Join(gauges, ",") + `]}`)
	compressed := gzipped(t, plain)
	require.Less(t, len(compressed), 400)
	require.Greater(t, len(plain), 1000)

	acc := &ackAcc{}
	l := start(t, acc, func(l *Listener) { l.MaxBodySize = 1000 })

	a := post(t, l.url(legacyPath), plain)
	require.Equal(t, http.StatusRequestEntityTooLarge, a.status, "declared length")

	// Chunked: no Content-Length, the limit is hit while reading.
	req, err := http.NewRequest(http.MethodPost, l.url(legacyPath), bytes.NewReader(plain))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	require.Equal(t, http.StatusRequestEntityTooLarge, do(t, req).status, "streamed")

	a = post(t, l.url(legacyPath), compressed, "Content-Encoding", "gzip")
	require.Equal(t, http.StatusRequestEntityTooLarge, a.status, "decompressed")
	require.Contains(t, a.body, "too large")
	require.Empty(t, acc.metrics())

	acc2 := &ackAcc{}
	l2 := start(t, acc2, func(l *Listener) { l.MaxBodySize = config.Size(len(plain)) })
	a = post(t, l2.url(legacyPath), compressed, "Content-Encoding", "gzip")
	require.Equal(t, http.StatusOK, a.status, "exactly at the limit")
	require.Len(t, acc2.metrics(), 40)
}

// TestAnswersOnlyAfterDelivery drives Telegraf's test accumulator as the
// agent would: the request is answered after its metrics are accepted.
func TestAnswersOnlyAfterDelivery(t *testing.T) {
	acc := &testutil.Accumulator{}
	l := start(t, acc, nil)
	res := postAsync(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1},{"name":"b","value":2}]}`))
	acc.Wait(2)
	select {
	case a := <-res:
		t.Fatalf("answered %d before delivery", a.status)
	default:
	}
	for _, m := range acc.GetTelegrafMetrics() {
		m.Accept()
	}
	a := <-res
	require.Equal(t, http.StatusOK, a.status, a.body)
}

func TestRejectedDeliveryIs503(t *testing.T) {
	acc := &testutil.Accumulator{}
	l := start(t, acc, nil)
	res := postAsync(t, l.url(taggedPath), []byte(`{"tags":{"a":"b"},"measurements":[{"name":"a","value":1},{"name":"b","value":2}]}`))
	acc.Wait(2)
	ms := acc.GetTelegrafMetrics()
	ms[0].Accept()
	ms[1].Reject() // one output dropped one metric: the request was not stored
	a := <-res
	require.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
}

func TestDeliveryTimeoutIs503(t *testing.T) {
	acc := &testutil.Accumulator{}
	l := start(t, acc, func(l *Listener) { l.DeliveryTimeout = config.Duration(time.Millisecond) })
	a := post(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1}]}`))
	require.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
	require.Contains(t, a.body, "timed out")
	// The late report still frees the slot (max_undelivered_requests = 1000
	// would hide a leak, so check the count).
	acc.Wait(1)
	acc.GetTelegrafMetrics()[0].Accept()
	require.Eventually(t, func() bool {
		l.tracker.mu.Lock()
		defer l.tracker.mu.Unlock()
		return l.tracker.requests == 0 && l.tracker.metrics == 0 && len(l.tracker.waiters) == 0
	}, 10*time.Second, time.Millisecond)
}

func TestRequestBoundIs503AtOnce(t *testing.T) {
	acc := &testutil.Accumulator{}
	l := start(t, acc, func(l *Listener) { l.MaxUndeliveredRequests = 1 })
	first := postAsync(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1}]}`))
	acc.Wait(1)
	a := post(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"b","value":1}]}`))
	require.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
	require.Contains(t, a.body, "too many undelivered")
	require.Equal(t, uint64(1), acc.NMetrics(), "the refused request was not handed over")
	acc.GetTelegrafMetrics()[0].Accept()
	require.Equal(t, http.StatusOK, (<-first).status)
}

func TestMetricBoundIs503AtOnce(t *testing.T) {
	acc := &testutil.Accumulator{}
	l := start(t, acc, func(l *Listener) { l.MaxUndeliveredMetrics = 2 })
	// Alone, a request larger than the bound is admitted.
	first := postAsync(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1},{"name":"b","value":1},{"name":"c","value":1}]}`))
	acc.Wait(3)
	a := post(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"d","value":1}]}`))
	require.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
	for _, m := range acc.GetTelegrafMetrics() {
		m.Accept()
	}
	require.Equal(t, http.StatusOK, (<-first).status)
}

func TestStopAnswersWaitingRequests(t *testing.T) {
	acc := &testutil.Accumulator{}
	l := start(t, acc, nil)
	res := postAsync(t, l.url(legacyPath), []byte(`{"gauges":[{"name":"a","value":1}]}`))
	acc.Wait(1)
	l.Stop()
	a := <-res
	require.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
}

// TestAnswersMatchWhatWasStored records every request and its answer from
// concurrent clients while the outputs reject some groups, then checks the
// whole history: a metric was stored if and only if its request got a 2xx.
func TestAnswersMatchWhatWasStored(t *testing.T) {
	acc := &ackAcc{reject: func(n int) bool { return n%3 == 1 }}
	l := start(t, acc, func(l *Listener) { l.MaxUndeliveredRequests = 2 })
	const clients, perClient = 4, 15
	type result struct {
		name   string
		status int
	}
	results := make(chan result, clients*perClient)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				name := fmt.Sprintf("client%d.req%d", c, i)
				status, err := tryPost(l.url(legacyPath), `{"gauges":[{"name":"`+name+`","value":1},{"name":"`+name+`.b","value":2}]}`)
				if err != nil {
					status = -1 // fails the check below, on the test's goroutine
				}
				results <- result{name, status}
			}
		}()
	}
	wg.Wait()
	close(results)

	stored := map[string]int{}
	for _, m := range acc.metrics() {
		stored[m.Name()]++
	}
	answered := 0
	for r := range results {
		answered++
		switch r.status {
		case http.StatusOK:
			require.Equal(t, 1, stored[r.name], r.name)
			require.Equal(t, 1, stored[r.name+".b"], r.name)
		case http.StatusServiceUnavailable:
			require.Zero(t, stored[r.name], r.name)
			require.Zero(t, stored[r.name+".b"], r.name)
		default:
			t.Fatalf("%s: answer %d", r.name, r.status)
		}
	}
	require.Equal(t, clients*perClient, answered)
}

// tryPost is post for other goroutines: it reports instead of asserting.
func tryPost(url, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}
