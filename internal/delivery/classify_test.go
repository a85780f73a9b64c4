package delivery

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/redact"
)

func TestClassify(t *testing.T) {
	now := testEpoch()
	const (
		fieldErr   = `{"errors":{"params":{"measure_time":["is too far in the past"],"name":"cpu.idle"}},"request_time":1}`
		nameOnly   = `{"errors":{"params":{"name":"cpu.idle"}}}`
		requestErr = `{"errors":{"request":["Please use secured connection through https!"]}}`
		htmlPage   = `<html><body><h1>400 Bad Request</h1>nginx</body></html>`
		otherJSON  = `{"error":"bad request","status":400}`
		rateLimit  = `{"request_time":1,"error":"You have hit the API limit for measurements [measure:raw_rate]."}`
	)
	cases := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		tagged     bool
		kind       outcomeKind
		retryAfter time.Duration
		errHas     string
	}{
		{"200", 200, nil, "", false, delivered, 0, ""},
		{"202 tagged", 202, nil, `{"measurements":{"summary":{"total":3,"accepted":3,"failed":0}}}`, true, delivered, 0, ""},
		{"400 field error is Librato blaming a measurement", 400, nil, fieldErr, false, rejected, 0, ""},
		{"422 field error", 422, nil, fieldErr, false, rejected, 0, ""},
		{"400 naming only the metric blames nothing", 400, nil, nameOnly, false, halt, 0, "not a measurement"},
		{"400 request error", 400, nil, requestErr, false, halt, 0, "not a measurement"},
		{"400 params.name holding messages is a field error", 400, nil,
			`{"errors":{"params":{"name":["is too long"]}}}`, false, rejected, 0, ""},
		{"400 params.source holding messages is a field error", 400, nil,
			`{"errors":{"params":{"source":["x y is not a valid source name"]}}}`, false, rejected, 0, ""},
		{"400 params field holding a plain string is context", 400, nil, `{"errors":{"params":{"value":"bad"}}}`, false, halt, 0, "not a measurement"},
		{"400 system error", 400, nil, `{"errors":{"system":["try again"]}}`, false, halt, 0, "not a measurement"},
		{"400 HTML from a proxy", 400, nil, htmlPage, false, halt, 0, "not Librato's error JSON"},
		{"400 empty body", 400, nil, "", false, halt, 0, "(empty body)"},
		{"400 other JSON", 400, nil, otherJSON, false, halt, 0, "not Librato's error JSON"},
		{"400 tagged unparseable", 400, nil, `{"code":400,"message":"Unable to process JSON"}`, true, halt, 0, "not Librato's error JSON"},
		{"413", 413, nil, htmlPage, false, tooLarge, 0, "measurements_per_request"},
		{"429 with Retry-After", 429, http.Header{"Retry-After": {"7"}}, rateLimit, false, transient, 7 * time.Second, ""},
		{
			"429 with rate-limit reset", 429, http.Header{"X-Librato-Ratelimit-Std": {"limit=300,remaining=0,reset=12"}}, "",
			false, transient, 12 * time.Second, "",
		},
		{"403 API limit", 403, nil, rateLimit, false, transient, 0, ""},
		{"403 plain HTTP", 403, nil, requestErr, false, halt, 0, "set api_url to https://"},
		{"403 read-only token", 403, nil, `{"errors":{"request":["read-only token"]}}`, false, halt, 0, "record access"},
		{"403 tags not enabled", 403, nil, `{"errors":["Tag based measurements are not enabled for this account."]}`, true, halt, 0, `api = "legacy"`},
		{"403 HTML page saying not enabled is no account answer", 403, nil,
			`<html><body>Access not enabled for your network</body></html>`, true, halt, 0, "record access"},
		{"403 other JSON saying not enabled", 403, nil, `{"message":"Feature not enabled"}`, true, halt, 0, "record access"},
		{"401", 401, nil, `{"errors":{"request":["Credentials are required to access this resource."]}}`, false, halt, 0, "api_user"},
		{"404", 404, nil, "", false, halt, 0, "check the path of api_url"},
		{"405", 405, nil, "", false, halt, 0, "check api_url"},
		{"415", 415, nil, "", false, halt, 0, "content_encoding"},
		{"500", 500, nil, htmlPage, false, transient, 0, ""},
		{"503 with date", 503, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, "", false, transient, 90 * time.Second, ""},
		{
			"301", 301, http.Header{"Location": {"https://user:pw@api.example.com/v1/metrics"}}, "",
			false, halt, 0, `a redirect to "https://api.example.com/v1/metrics", which is not followed: set api_url`,
		},
		{"307 without location", 307, nil, "", false, halt, 0, "without a location"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := classify(tc.status, tc.header, []byte(tc.body), tc.tagged, now)
			require.Equal(t, tc.kind, o.kind)
			require.Equal(t, tc.retryAfter, o.retryAfter)
			if tc.errHas != "" {
				require.ErrorContains(t, o.err, tc.errHas)
			}
			require.Equal(t, strings.Contains(tc.name, "tags not enabled"), errors.Is(o.err, ErrTagsNotEnabled), "only Librato's JSON says not enabled")
			if o.kind == halt && tc.status >= 300 && tc.status < 400 {
				require.NotContains(t, o.err.Error(), "pw")
				require.NotContains(t, o.err.Error(), "user")
			}
		})
	}
}

func TestUnfinishedAnswersProveNothing(t *testing.T) {
	rejection := classify(400, nil, []byte(`{"errors":{"params":{"value":["is not a number"]}}}`), false, time.Time{})
	require.Equal(t, rejected, unfinished(rejection, nil).kind)
	cut := unfinished(rejection, context.DeadlineExceeded)
	require.Equal(t, halt, cut.kind)
	require.ErrorContains(t, cut.err, "cut off")
	require.ErrorIs(t, cut.err, context.DeadlineExceeded)
	transientCut := unfinished(classify(503, nil, nil, false, time.Time{}), io.ErrUnexpectedEOF)
	require.Equal(t, transient, transientCut.kind, "only a rejection needs its whole body")
}

func TestAcceptedWithFailures(t *testing.T) {
	cases := []struct {
		body   string
		failed int
		errs   string
	}{
		{``, 0, ""},
		{`{}`, 0, ""},
		{`{"measurements":{"summary":{"total":5,"accepted":5,"failed":0,"filtered":0}}}`, 0, ""},
		{`{"measurements":{"summary":{"total":5,"accepted":3,"failed":2,"filtered":0}}}`, 2, ""},
		{`{"errors":[]}`, 0, ""},
		{`{"errors":[{"metric":"x","message":"bad tag"}]}`, 0, `"[{\"metric\":\"x\",\"message\":\"bad tag\"}]"`},
		{`not json`, 0, ""},
	}
	for _, tc := range cases {
		failed, errs, _ := acceptedWithFailures([]byte(tc.body))
		require.Equal(t, tc.failed, failed, tc.body)
		require.Equal(t, tc.errs, errs, tc.body)
	}
}

func TestRedactEveryForm(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testToken))
	a := Credentials{secrets: redact.New([]byte(testUser), []byte(testToken))}
	echo := `{"errors":{"request":["Authorization: Basic ` + basic + ` for ops%40example.com"]}}`
	got := string(a.Redact([]byte(echo)))
	require.NotContains(t, got, basic[:12])
	require.NotContains(t, got, "ops%40example.com")
	require.Contains(t, got, "Basic [redacted] for [redacted]")
}

const (
	testUser  = "ops@example.com"
	testToken = "s3cr3t-t0ken-9f8e7d"
)

// TestAdvice: one table for the hints of delivery errors and -check.
func TestAdvice(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   string
	}{
		{200, "", ""},
		{503, "", ""},
		{400, `{"errors":{"params":{"value":["bad"]}}}`, ""},
		{301, "", "check api_url"},
		{401, "", "check api_user (the account email) and api_token"},
		{403, `{"errors":["Tag based measurements are not enabled for this account."]}`, `set api = "legacy" or "auto"`},
		{403, `<html>Feature not enabled</html>`, "record access"},
		{403, `{"errors":{"request":["Please use secured connection through https!"]}}`, "set api_url to https://"},
		{403, `{"error":"You have hit the API limit for measurements"}`, "try again later"},
		{429, "", "try again later"},
		{404, "", "check the path of api_url"},
		{415, "", "content_encoding"},
		{405, "", "check api_url"},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status)+" "+tc.body, func(t *testing.T) {
			got := Advice(tc.status, []byte(tc.body))
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.want)
		})
	}
}
