package librato

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
	"github.com/seed-d22a899f/librato/internal/testclock"
)

// The evidence rule's regression tests: each case is an endpoint that
// misleads an inference (one acceptance long ago, the other API's
// acceptance, a change of mind, an unknown rule, a backlog, an HTML page),
// run through Telegraf's RunningOutput, and counted exactly. Each prints a
// row for the closing note:
//
//	go test -run TestEvidenceRule -v . | grep '| evidence'

// evidenceHarness is one case's plugin, fake and counts.
type evidenceHarness struct {
	t       *testing.T
	fake    *fakelibrato.Server
	l       *Librato
	logger  *testutil.CaptureLogger
	out     *models.RunningOutput
	api     string
	longest time.Duration
	writes  int
	failed  int
}

func newEvidenceHarness(t *testing.T, api string, opts fakelibrato.Options) *evidenceHarness {
	h := &evidenceHarness{t: t, api: api, logger: newCaptureLogger()}
	h.fake = newFake(t, opts)
	url := apiURL(h.fake, api)
	if api == apiAuto {
		url = h.fake.URL()
	}
	h.l = newPlugin(t, url, func(l *Librato) {
		l.API = api
		l.Log = h.logger
	})
	h.out = runningOutput(t, h.l)
	// The row is printed even when a check fails, so a run on code that
	// breaks the rule shows what it cost.
	t.Cleanup(func() { h.row(h.counts()) })
	return h
}

// flush adds metrics to Telegraf's buffer and runs one flush, timed.
func (h *evidenceHarness) flush(metrics []telegraf.Metric) error {
	addAll(h.out, metrics)
	err := timedWrite(h.out, &h.longest)
	h.writes++
	if err != nil {
		h.failed++
	}
	h.t.Logf("flush %d: %v", h.writes, err)
	return err
}

// flushUntilEmpty flushes until Telegraf's buffer is empty, at most limit
// times, and reports whether it emptied.
func (h *evidenceHarness) flushUntilEmpty(limit int) bool {
	for range limit {
		if h.flush(nil) == nil && h.out.BufferLength() == 0 {
			return true
		}
	}
	return false
}

// stored counts what the fake stored of each measurement, control
// measurements left out (they are counted apart).
func (h *evidenceHarness) stored() (perKey map[fakeKey]int, controls int) {
	perKey = map[fakeKey]int{}
	for _, g := range h.fake.Gauges() {
		if g.Name == delivery.ControlName {
			controls++
			continue
		}
		perKey[fakeKey{g.Name, g.Source, g.MeasureTime}]++
	}
	for _, m := range h.fake.Measurements() {
		if m.Name == delivery.ControlName {
			controls++
			continue
		}
		perKey[fakeKey{m.Name, m.Tags["host"], m.Time}]++
	}
	return perKey, controls
}

type evidenceCounts struct {
	delivered, dropped, duplicated, controls int
}

func (h *evidenceHarness) counts() evidenceCounts {
	perKey, controls := h.stored()
	c := evidenceCounts{delivered: len(perKey), controls: controls, dropped: int(h.l.stats.dropped[reasonRejected].Get())}
	for _, n := range perKey {
		c.duplicated += n - 1
	}
	return c
}

func (h *evidenceHarness) row(c evidenceCounts) {
	h.t.Logf("| evidence: %s | %d requests | %d delivered | %d dropped | %d duplicated | %d controls | %d of %d Writes failed "+
		"| longest Write %s | %d log lines |",
		h.t.Name(), len(h.fake.Requests()), c.delivered, c.dropped, c.duplicated, c.controls, h.failed, h.writes,
		h.longest.Round(time.Millisecond), len(h.logger.Messages()))
}

// fieldError is Librato's 400 for a value it does not take.
var fieldError = fakelibrato.Action{Status: http.StatusBadRequest,
	Body: []byte(`{"errors":{"params":{"value":["is not accepted here"]}},"request_time":1}`)}

// rejectAllWhile answers every POST with action while on is set.
func rejectAllWhile(on *atomic.Bool, action fakelibrato.Action) func(int, *fakelibrato.Received) fakelibrato.Action {
	return func(_ int, r *fakelibrato.Received) fakelibrato.Action {
		if on.Load() && r.Method == http.MethodPost {
			return action
		}
		return fakelibrato.Action{}
	}
}

// smallFlush is flush i's metrics: one metric of three fields (three
// gauges), at its own fixed time. The time must not be read from the wall
// clock: two flushes that straddle a second would give two values of i the
// same time, and so the same keys.
func smallFlush(i int) []telegraf.Metric {
	ts := testclock.Epoch().Add(-time.Minute - time.Duration(i)*time.Second)
	return []telegraf.Metric{metric.New("cpu", map[string]string{"host": "web"}, map[string]any{"idle": 1.0, "user": 2.0, "busy": 3.0}, ts)}
}

func TestEvidenceRule(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T) (*evidenceHarness, evidenceCounts)
	}{
		{"an acceptance long ago is no proof", acceptedLongAgo},
		{"an endpoint that changes its mind mid-flush", changesItsMind},
		{"the other API's acceptance is no proof", otherAPIAcceptance},
		{"an unknown name rule is isolated", unknownNameRule},
		{"a backlog too far in the past is dropped with proof", backlogTooOld},
		{"an HTML 403 saying not enabled is no account answer", htmlNotEnabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, want := tc.run(t)
			got := h.counts()
			require.Equal(t, want.delivered, got.delivered, "delivered")
			require.Equal(t, want.dropped, got.dropped, "dropped with proof")
			require.Zero(t, got.duplicated, "duplicated")
			for _, m := range h.logger.Messages() {
				require.NotContains(t, m.Text, testToken)
			}
		})
	}
}

// acceptedLongAgo: the endpoint accepted a Write, then answers every
// request with Librato's field error (a server-side change, a broken
// compatible server, another account). Ten small flushes: nothing is
// dropped, each Write fails; once the endpoint is healthy, all arrive.
func acceptedLongAgo(t *testing.T) (*evidenceHarness, evidenceCounts) {
	var rejecting atomic.Bool
	h := newEvidenceHarness(t, apiLegacy, fakelibrato.Options{Fault: rejectAllWhile(&rejecting, fieldError)})
	first := smallFlush(100)
	require.NoError(t, h.flush(first))
	rejecting.Store(true)
	for i := range 10 {
		require.Error(t, h.flush(smallFlush(i)), "flush %d: nothing may pass for delivered", i)
	}
	assert.Zero(t, h.l.stats.dropped[reasonRejected].Get())
	rejecting.Store(false)
	assert.True(t, h.flushUntilEmpty(3))
	return h, evidenceCounts{delivered: 33}
}

// changesItsMind: in the middle of a large flush the endpoint rejects
// everything for a span of requests, then accepts again.
func changesItsMind(t *testing.T) (*evidenceHarness, evidenceCounts) {
	h := newEvidenceHarness(t, apiLegacy, fakelibrato.Options{Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
		if n >= 4 && n < 60 {
			return fieldError
		}
		return fakelibrato.Action{}
	}})
	metrics, want := workload(3000) // 9,000 gauges, 30 batches
	h.flush(metrics)                //nolint:errcheck // either way, the counts below decide
	assert.True(t, h.flushUntilEmpty(5))
	requireExactlyOnceIn(t, h.fake, apiLegacy, want)
	return h, evidenceCounts{delivered: len(want)}
}

// otherAPIAcceptance: with api = "auto", the legacy API accepted a flush;
// the tagged API then answers every request with a field error. The legacy
// acceptance proves nothing about /v1/measurements.
func otherAPIAcceptance(t *testing.T) (*evidenceHarness, evidenceCounts) {
	h := newEvidenceHarness(t, apiAuto, fakelibrato.Options{Fault: func(_ int, r *fakelibrato.Received) fakelibrato.Action {
		if r.Path == taggedPath {
			return fieldError
		}
		return fakelibrato.Action{}
	}})
	legacy, _ := workload(5)
	h.l.mu.Lock()
	require.NoError(t, h.l.deliver(legacy, false, time.Now()))
	require.True(t, h.l.sender.lastAccepted())
	h.l.ledger.reset()
	tagged, _ := workload(5)
	err := h.l.deliver(tagged, true, time.Now())
	accepted := h.l.sender.lastAccepted()
	h.l.ledger.reset()
	h.l.mu.Unlock()
	assert.False(t, accepted, "nothing the tagged API accepted: auto must learn nothing from it")
	h.writes, h.failed = 2, 0
	if err != nil {
		h.failed = 1
	}
	require.Error(t, err, "the tagged flush cannot have succeeded")
	assert.Zero(t, h.l.stats.dropped[reasonRejected].Get())
	return h, evidenceCounts{delivered: 15}
}

// unknownNameRule: Librato rejects one name by a rule the plugin does not
// know (a stricter length limit), blaming params.name with messages. The
// measurement is isolated and dropped with proof; the good gauges of its
// batch arrive within a few flushes instead of waiting for ever.
func unknownNameRule(t *testing.T) (*evidenceHarness, evidenceCounts) {
	longField := "f" + strings.Repeat("x", 60)
	h := newEvidenceHarness(t, apiLegacy, fakelibrato.Options{Fault: func(_ int, r *fakelibrato.Received) fakelibrato.Action {
		for _, g := range r.Gauges {
			if strings.HasSuffix(g.Name, longField) {
				return fakelibrato.Action{Status: http.StatusBadRequest, Body: []byte(`{"errors":{"params":{"name":["is too long"]}}}`)}
			}
		}
		return fakelibrato.Action{}
	}})
	metrics, want := workload(1000) // 3,000 gauges, 10 batches
	ts := time.Now().Add(-time.Minute).Truncate(time.Second)
	metrics = append(metrics[:500:500], append([]telegraf.Metric{
		metric.New("app", map[string]string{"host": "web"}, map[string]any{longField: 1.0}, ts)}, metrics[500:]...)...)
	h.flush(metrics) //nolint:errcheck // counted below
	assert.True(t, h.flushUntilEmpty(4), "the good gauges arrive within a few flushes")
	requireExactlyOnceIn(t, h.fake, apiLegacy, want)
	return h, evidenceCounts{delivered: len(want), dropped: 1}
}

// backlogTooOld: after a long outage, a Write holds only measurements
// Librato finds too far in the past. Nothing else is accepted, so the
// control request supplies the evidence: they are dropped with proof
// within a few flushes, and the output does not wedge.
func backlogTooOld(t *testing.T) (*evidenceHarness, evidenceCounts) {
	h := newEvidenceHarness(t, apiLegacy, fakelibrato.Options{MaxPast: time.Hour})
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	metrics := make([]telegraf.Metric, 0, 10)
	for i := range 10 {
		metrics = append(metrics, metric.New("cpu", map[string]string{"host": "web"},
			map[string]any{"idle": 1.0, "user": 2.0, "busy": 3.0}, old.Add(time.Duration(i)*time.Second)))
	}
	h.flush(metrics) //nolint:errcheck // counted below
	assert.True(t, h.flushUntilEmpty(10), "the backlog is settled, not wedged")
	return h, evidenceCounts{delivered: 0, dropped: 30}
}

// htmlNotEnabled: with api = "auto", a firewall answers the tagged API with
// an HTML 403 page that contains "not enabled". That is not Librato saying
// the account has no tags: nothing goes to the legacy API, and once the
// firewall is gone the measurements arrive tagged.
func htmlNotEnabled(t *testing.T) (*evidenceHarness, evidenceCounts) {
	var firewall atomic.Bool
	firewall.Store(true)
	h := newEvidenceHarness(t, apiAuto, fakelibrato.Options{Fault: rejectAllWhile(&firewall, fakelibrato.Action{
		Status: http.StatusForbidden, Header: http.Header{"Content-Type": {"text/html"}},
		Body: []byte(`<html><body><h1>403</h1>Access from your network is not enabled.</body></html>`)})})
	metrics, want := workload(10)
	require.Error(t, h.flush(metrics))
	firewall.Store(false)
	assert.True(t, h.flushUntilEmpty(2))
	for _, r := range h.fake.Requests() {
		assert.Equal(t, taggedPath, r.Path, "request %d: an HTML page does not switch the API", r.N)
	}
	requireExactlyOnceIn(t, h.fake, apiTagged, want)
	return h, evidenceCounts{delivered: len(want)}
}
