package delivery

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedTeamCutOffTaggedSummaryIsNoEvidence: the evidence rule's A is, for
// the tagged API, "a summary without failures". A 2xx whose summary cannot
// be read — a body longer than MaxResponseRead (a partial success listing
// hundreds of errors), or cut off — shows no such thing: here the control
// measurement's answer says every measurement failed, yet because its body
// was longer than what is read it counted as a clean acceptance, and the
// suspect was dropped as rejected_by_api on that proof.
func TestRedTeamCutOffTaggedSummaryIsNoEvidence(t *testing.T) {
	longFailure := `{"errors":[` + strings.Repeat(`{"param":"time","value":"x","reason":"the service is refusing measurements right now"},`, 300) +
		`{"param":"time"}],"measurements":{"summary":{"total":1,"accepted":0,"failed":1,"filtered":0}}}`
	require.Greater(t, len(longFailure), MaxResponseRead)
	lib := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte(ControlName)) {
			return answer(req, http.StatusAccepted, longFailure), nil
		}
		return answer(req, http.StatusBadRequest, `{"errors":{"params":{"time":["is too far in the past"]}}}`), nil
	})
	clock := &fakeClock{now: testEpoch()}
	s, rejected := costSender(t, lib, clock)
	ms := []Measurement{{Name: "m", Series: &Series{Tags: `{"host":"web"}`}, Time: testEpoch().Unix() - 10, Value: 1}}
	res, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/measurements", Tagged: true}, clock.Now())
	require.Error(t, err, "no clean acceptance: the measurement stays buffered")
	require.Empty(t, res.Proofs)
	require.Zero(t, rejected.Get())
}

// TestRedTeamAbsurdHintsStillPause: a spent budget whose reset is an absurd
// Unix time, or a Retry-After beyond int64 seconds, is still a request to
// pause (which max_retry_after then caps). The reset overflowed time.Unix
// into the past and the Retry-After failed to parse, so both read as "no
// pause" and requests went on hammering a budget Librato said was spent,
// while a merely huge value (999999999999) pauses for max_retry_after.
func TestRedTeamAbsurdHintsStillPause(t *testing.T) {
	now := testEpoch()
	for _, h := range []http.Header{
		{"X-Librato-Ratelimit-Std": {"limit=300,remaining=0,reset=9223372036854775807"}},
		{"Retry-After": {"99999999999999999999"}},
	} {
		require.Positive(t, retryHint(h, now), "%v", h)
	}
}

// TestRedTeamHTMLSuccessPageIsNotAcceptance: a TLS-intercepting proxy or
// portal that answers every POST with a 200 HTML page ("blocked by
// policy", a sign-in page) stored nothing, yet its 2xx settled every
// measurement and the Write returned nil: all of it lost without a word,
// while the same page with status 400 keeps everything. Librato never
// answers its API with HTML.
func TestRedTeamHTMLSuccessPageIsNotAcceptance(t *testing.T) {
	for _, tagged := range []bool{false, true} {
		lib := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			_, _ = io.Copy(io.Discard, req.Body)
			resp := answer(req, http.StatusOK, `<html><body>Access to this site is blocked by policy</body></html>`)
			resp.Header.Set("Content-Type", "text/html; charset=utf-8")
			return resp, nil
		})
		clock := &fakeClock{now: testEpoch()}
		s, _ := costSender(t, lib, clock)
		ms := []Measurement{{Name: "m", Series: &Series{Source: "web", Tags: `{"host":"web"}`}, Time: testEpoch().Unix(), Value: 1}}
		res, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/x", Tagged: tagged}, clock.Now())
		require.Error(t, err, "tagged=%v", tagged)
		require.False(t, res.Accepted)
		require.Equal(t, []bool{false}, res.Settled)
	}
}
