package librato

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// Red-team findings: each test states what the contract requires and fails
// on the current code. See the commit message for root causes.

// TestRedteamShortTimeoutWithoutRetryBudgetNeverSends: timeout <= 1s and
// retry_budget = 0 are both accepted by Init, yet no request may ever start:
// minWindow = min(1s, timeout) = timeout, deadline = start + timeout, so
// mayStart's now+timeout > start+timeout holds as soon as any time passed.
// Every flush fails against a healthy API, forever.
func TestRedteamShortTimeoutWithoutRetryBudgetNeverSends(t *testing.T) {
	for _, timeout := range []time.Duration{500 * time.Millisecond, time.Second} {
		t.Run(timeout.String(), func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) {
				l.Timeout = config.Duration(timeout)
				l.RetryBudget = 0
			})
			metrics, want := workload(10)
			var err error
			for range 3 { // Telegraf's next flushes
				if err = l.Write(metrics); err == nil {
					break
				}
			}
			require.NoError(t, err, "a healthy API must take the metrics")
			requireExactlyOnce(t, fake, want)
		})
	}
}

// TestRedteamRateLimitResetIsNotCapped: one 200 whose rate-limit header
// has an absurd reset (the kind max_retry_after caps for Retry-After)
// makes the pacer space requests ~92 days apart. No later request is ever
// sent, so no later answer can correct the pacing: the output is wedged
// although the API is healthy again.
func TestRedteamRateLimitResetIsNotCapped(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	target, err := url.Parse(fake.URL())
	require.NoError(t, err)
	var answers atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if answers.Add(1) == 1 {
			r.Header.Set("X-Librato-RateLimit-Std", "limit=1000,remaining=100,reset=999999999")
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	l := newPlugin(t, front.URL+"/v1/metrics", func(l *Librato) {
		l.MaxRetryAfter = config.Duration(time.Second)
		l.RetryBudget = config.Duration(time.Second)
		l.ConcurrentWrites = 1
	})
	out := runningOutput(t, l)
	metrics, want := workload(1000) // 3,000 gauges, 10 requests
	addAll(out, metrics)

	start := time.Now()
	for out.BufferLength() > 0 && time.Since(start) < 5*time.Second {
		err := out.Write()
		t.Logf("flush: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d requests reached the API", len(fake.Requests()))
	require.Zero(t, out.BufferLength(), "delivery must resume within max_retry_after (1s) + retry_budget")
	requireExactlyOnce(t, fake, want)
}

// TestRedteamAutoRecheckRetryGoesToTheOtherAPI: api = "auto", the account
// was learned legacy more than 24h ago, so the next flush re-checks tagged.
// The account now takes tags; the first tagged request is stored, the
// second meets a 503 and the flush fails (retry_budget = 0). Telegraf's
// retry then goes to the legacy API (forFlush: pending keeps a learned
// "legacy"), where the ledger's tagged keys match nothing, so the 900
// measurements the tagged API stored are sent a second time.
func TestRedteamAutoRecheckRetryGoesToTheOtherAPI(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(n int, _ *fakelibrato.Received) fakelibrato.Action {
		if n == 2 {
			return fakelibrato.Action{Status: http.StatusServiceUnavailable}
		}
		return fakelibrato.Action{}
	}})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.RetryBudget = 0
		l.ConcurrentWrites = 1
	})
	l.api.learned, l.api.learnedAt = apiLegacy, time.Now().Add(-25*time.Hour)
	out := runningOutput(t, l)
	metrics, want := workload(1000) // 3,000 measurements, 10 requests
	addAll(out, metrics)
	flushUntilEmpty(t, out, 4)

	arrived := map[fakeKey]int{}
	for _, m := range fake.Measurements() {
		arrived[fakeKey{m.Name, m.Tags["host"], m.Time}]++
	}
	for _, g := range fake.Gauges() {
		arrived[fakeKey{g.Name, g.Source, g.MeasureTime}]++
	}
	twice := 0
	for _, k := range want {
		require.Positive(t, arrived[k], "measurement %v", k)
		twice += arrived[k] - 1
	}
	t.Logf("tagged: %d measurements, legacy: %d gauges", len(fake.Measurements()), len(fake.Gauges()))
	require.Zero(t, twice, "no measurement may be sent twice without a lost acknowledgement")
}

// TestRedteamAutoFallbackDoublesTheDeadline: api = "auto" on a legacy
// account. The tagged request is answered 403 "not enabled" after 1.9s,
// then Write starts a second deliver with a fresh deadline, whose request
// takes 1.9s too: Write takes ~3.8s, past timeout + retry_budget + 1s = 3s.
func TestRedteamAutoFallbackDoublesTheDeadline(t *testing.T) {
	const timeout = 2 * time.Second
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true, Latency: 1900 * time.Millisecond})
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.Timeout = config.Duration(timeout)
		l.RetryBudget = 0
	})
	metrics, want := workload(10)
	start := time.Now()
	err := l.Write(metrics)
	took := time.Since(start)
	t.Logf("Write took %s: %v", took, err)
	require.NoError(t, err)
	requireExactlyOnce(t, fake, want)
	require.Less(t, took, timeout+time.Second, "one deadline per Write: timeout + retry_budget + 1s")
}

// TestRedteamRedirectLocationIsNotRedacted: a proxy or SSO gateway that
// redirects to a URL carrying the credentials (a login page with the user
// and token in the query) puts them into the flush's error verbatim:
// redirectError strips only the URL's user info, and the Location header
// never passes through flushAuth.redact as response bodies do.
func TestRedteamRedirectLocationIsNotRedacted(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: http.StatusFound, Header: http.Header{
			"Location": {"https://sso.example.com/login/" + testUser + "?token=" + testToken}}}
	}})
	l := newPlugin(t, fake.LegacyURL())
	metrics, _ := workload(10)
	err := l.Write(metrics)
	require.Error(t, err)
	t.Logf("error: %v", err)
	requireNoCredentials(t, err.Error())
}

// TestRedteamGoodProbeClearsAnotherRequestsPause: while the probe is on
// the wire, a request sent before the pause comes back 429 and pauses the
// gate again. The probe's good answer then clears probeDue, so after the
// second pause every waiting request goes at once, with no probe first,
// which is what the README promises after a pause.
func TestRedteamGoodProbeClearsAnotherRequestsPause(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	g := &rateGate{clock: clock, maxPause: time.Minute}
	g.pause(10 * time.Second)
	probe, err := g.wait(t.Context(), clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, probe)

	g.pause(10 * time.Second) // another, older request's 429 arrives now
	g.probeAnswered(false)    // the probe itself was accepted

	probe, err = g.wait(t.Context(), clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, probe, "after the second pause one request probes first")
}
