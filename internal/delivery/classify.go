package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-d22a899f/librato/internal/redact"
)

// outcomeKind is what one response means for the measurements it carried.
type outcomeKind int

const (
	delivered outcomeKind = iota
	transient             // network error, timeout, 5xx, rate limit: retry within the flush
	rejected              // Librato's own 400/422 naming a field: some measurement is invalid
	tooLarge              // 413: split the request
	halt                  // anything else: stop the flush, keep every unsettled measurement
)

// maxErrorText bounds the part of a response body that reaches an error or
// a log line.
const maxErrorText = 1024

type outcome struct {
	kind       outcomeKind
	status     int
	retryAfter time.Duration
	err        error
	// reason is Librato's explanation, quoted, for the drop summary.
	reason string
	// names and sources are the metric names and sources the error body
	// blames, to find the offending measurements in fewer requests.
	names, sources []string
	// fields are the params fields holding messages: what the search for
	// the rejected measurements ranks by (search.go).
	fields []string
	// apiFailed is how many measurements a tagged 2xx answer's summary
	// says failed; apiErrors is the "errors" it carried. Nothing is resent
	// for them: the answer does not say which, and the rest are stored.
	apiFailed int
	apiErrors string
	// summaryUnread: a tagged 2xx whose summary could not be read (cut
	// off, or not JSON): it settles its measurements, but it is no
	// evidence that the endpoint takes data.
	summaryUnread bool
	// Where and when, for the evidence rule: the request's URL, how many
	// measurements it carried, and the flush's logical clock just before
	// it was sent and after its answer was read.
	url            string
	measurements   int
	sent, answered uint64
}

// classify maps a response to an outcome. body is the (size-limited, already
// redacted) start of the response body; now reads HTTP-date Retry-After.
func classify(status int, header http.Header, body []byte, tagged bool, now time.Time) outcome {
	o := outcome{status: status}
	if status >= 200 && status < 300 {
		if isHTML(header) {
			// Librato never answers its API with HTML; a proxy or portal
			// that does ("blocked by policy", a sign-in page) stored
			// nothing, so its 2xx settles nothing.
			o.kind = halt
			o.err = fmt.Errorf("librato answered %d with an HTML page, which is not Librato's API (a proxy or portal in the way?): "+
				"nothing was taken as delivered: check api_url and http_proxy_url", status)
			return o
		}
		o.kind = delivered
		return o
	}
	apiErr := parseAPIError(body)
	o.reason = strconv.Quote(apiErr.reason)
	o.names, o.sources, o.fields = apiErr.names, apiErr.sources, apiErr.fields
	o.err = fmt.Errorf("librato answered %d: %s", status, Excerpt(body))
	switch {
	case status >= 300 && status < 400:
		o.kind = halt
		o.err = RedirectError(status, header.Get("Location"))
	case status == http.StatusTooManyRequests || status >= 500:
		o.kind = transient
		o.retryAfter = retryHint(header, now)
	case status == http.StatusForbidden && IsRateLimit(body):
		o.kind = transient
		o.retryAfter = retryHint(header, now)
	case (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && apiErr.fieldErrors:
		o.kind = rejected
	case status == http.StatusRequestEntityTooLarge:
		o.kind = tooLarge
		o.err = fmt.Errorf("librato answered 413 (request too large; a proxy may limit bodies: lower measurements_per_request): %s", Excerpt(body))
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		o.kind = halt
		o.err = unprovenRejection(status, body, apiErr)
	default:
		o.kind = halt
		o.err = settingError(status, body, tagged)
	}
	return o
}

// isHTML reports an answer that says it is an HTML page.
func isHTML(h http.Header) bool {
	ct := strings.ToLower(strings.TrimSpace(h.Get("Content-Type")))
	return strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "application/xhtml")
}

// unfinished: an answer whose body was cut off (a reset, the deadline)
// proves nothing about the measurements, however Librato-like its start.
func unfinished(o outcome, readErr error) outcome {
	if readErr == nil || o.kind != rejected {
		return o
	}
	o.kind = halt
	o.err = fmt.Errorf("librato answered %d but the answer was cut off (%w), which proves nothing: %w", o.status, readErr, o.err)
	return o
}

// acceptedWithFailures reads a tagged 2xx body:
// {"measurements":{"summary":{"total":N,"accepted":N,"failed":N,"filtered":N}}},
// and a non-empty "errors", which clients have seen beside a partial success.
// read is false for a body that is not JSON (an empty one reads as no
// failures).
func acceptedWithFailures(body []byte) (failed int, errs string, read bool) {
	if len(body) == 0 {
		return 0, "", true
	}
	var doc struct {
		Measurements struct {
			Summary struct {
				Failed int `json:"failed"`
			} `json:"summary"`
		} `json:"measurements"`
		Errors json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return 0, "", false
	}
	switch string(doc.Errors) {
	case "", "null", "[]", "{}":
	default:
		errs = Excerpt(doc.Errors)
	}
	return max(doc.Measurements.Summary.Failed, 0), errs, true
}

// IsRateLimit reports whether the body is Librato's "API limit" or a "rate limit" answer.
func IsRateLimit(body []byte) bool {
	s := strings.ToLower(string(body))
	return strings.Contains(s, "api limit") || strings.Contains(s, "rate limit")
}

// RedirectError explains a redirect, which is never followed: Go would
// turn the POST into a bodyless GET (silently storing nothing) and may send
// the credentials to the new location, so the user is told to point api_url
// there instead.
func RedirectError(status int, location string) error {
	if location == "" {
		return fmt.Errorf("librato answered %d, a redirect without a location: check api_url", status)
	}
	// Callers redacted it with the credentials; this keeps a caller that
	// forgets from printing a user or an SSO page's token.
	location = redact.URL(location)
	return fmt.Errorf("librato answered %d, a redirect to %s, which is not followed: set api_url to it if you trust it", status, strconv.Quote(location))
}

// unprovenRejection: a 400 that is not Librato naming a field (a proxy, a
// WAF, a captive portal, or a request-level error) says nothing about the
// measurements, so none is dropped for it.
func unprovenRejection(status int, body []byte, apiErr apiError) error {
	who := "a body that is not Librato's error JSON (a proxy or firewall in the way?)"
	if apiErr.librato {
		who = "an error about the request, not a measurement"
	}
	return fmt.Errorf("librato answered %d with %s: %s", status, who, Excerpt(body))
}

// settingError tells the user which setting to fix.
func settingError(status int, body []byte, tagged bool) error {
	if tagged && TagsNotEnabled(status, body) {
		return fmt.Errorf(`librato answered 403 (%w: set api = "legacy" or "auto"): %s`, ErrTagsNotEnabled, Excerpt(body))
	}
	return fmt.Errorf("librato answered %d (%s): %s", status, Advice(status, body), Excerpt(body))
}

// AdviceCredentialsInURL is the 401 advice when the credentials came from
// api_url, for delivery errors and the credential check alike.
const AdviceCredentialsInURL = "the credentials were refused: check the credentials in api_url " +
	"(https://EMAIL:TOKEN@host/..., the account email with @ written %40, and the API token)"

// Advice names the setting behind an answer that is not Librato taking the
// data, for delivery errors and the credential check alike; "" when no
// setting explains it (a success, a server error, Librato's own 400).
func Advice(status int, body []byte) string {
	switch {
	case status/100 == 2 || status >= 500:
		return ""
	case status/100 == 3:
		return "a redirect, which is not followed: check api_url"
	case status == http.StatusUnauthorized:
		return "the credentials were refused: check api_user (the account email) and api_token"
	case status == http.StatusTooManyRequests, status == http.StatusForbidden && IsRateLimit(body):
		return "the account is rate limited: nothing is wrong with the settings as far as seen, try again later"
	case status == http.StatusForbidden && WantsHTTPS(body):
		return "Librato wants HTTPS: set api_url to https://"
	case TagsNotEnabled(status, body):
		return `tag-based measurements are not enabled for this account: set api = "legacy" or "auto"`
	case status == http.StatusForbidden:
		return "check that api_token is valid and has record access, and that api_url is https://"
	case status == http.StatusNotFound:
		return "no Librato API at this path: check the path of api_url"
	case status == http.StatusUnsupportedMediaType:
		return `check content_encoding (Librato may not accept "gzip")`
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return ""
	}
	return "check api_url"
}

// WantsHTTPS reports Librato's answer to plain HTTP, "Please use secured
// connection through https!".
func WantsHTTPS(body []byte) bool {
	return bytes.Contains(bytes.ToLower(body), []byte("secured connection"))
}

// TagsNotEnabled reports whether the answer is Librato's 403 "Tag based measurements are
// not enabled for this account", in its error JSON ({"errors":[…]} or
// {"errors":{…}}). An HTML page from a proxy or firewall that happens to
// contain the words is not: taking it for one would switch api = "auto" to
// the legacy API on a tagged account.
func TagsNotEnabled(status int, body []byte) bool {
	if status != http.StatusForbidden {
		return false
	}
	e := parseAPIError(body)
	return e.librato && strings.Contains(strings.ToLower(e.reason), "not enabled")
}

// Excerpt quotes the start of a response body (already redacted) for an
// error or log line, at most maxErrorText bytes of it.
func Excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}

type apiError struct {
	reason         string
	names, sources []string
	fields         []string
	// librato: the body has the shape of Librato's error JSON, an object
	// with "errors". fieldErrors: it names at least one invalid field of a
	// measurement ("params"), the only answer that blames the data itself.
	librato, fieldErrors bool
}

var invalidSource = regexp.MustCompile(`^(.*) is not a valid source name`)

// parseAPIError reads the error shapes Librato is known to send:
// {"errors":{"params":{field:[msg…],"name":…}}}, {"errors":{"request":…}},
// {"errors":[…]}, {"error":"…"} and {"message":"…"}.
func parseAPIError(body []byte) apiError {
	var doc struct {
		Errors  json.RawMessage `json:"errors"`
		Error   string          `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return apiError{}
	}
	e := apiError{librato: len(doc.Errors) > 0 && string(doc.Errors) != "null"}
	var parts []string
	var groups map[string]json.RawMessage
	if json.Unmarshal(doc.Errors, &groups) == nil {
		for _, group := range slices.Sorted(maps.Keys(groups)) {
			switch group {
			case "params":
				parts = append(parts, e.readParams(groups[group])...)
				continue
			case "name": // the tagged API may put the metric beside params
				e.names = append(e.names, stringsOf(groups[group])...)
				continue
			}
			for _, msg := range stringsOf(groups[group]) {
				parts = append(parts, group+": "+msg)
			}
		}
	} else {
		parts = stringsOf(doc.Errors)
	}
	for _, s := range []string{doc.Error, doc.Message} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	e.reason = strings.Join(parts, "; ")
	if len(e.reason) > maxErrorText {
		e.reason = e.reason[:maxErrorText] + "…"
	}
	return e
}

// readParams collects "field: message" parts and the names and sources the
// messages blame. A field error is a field holding an array of messages, for
// any field, name and source included: a name rule the plugin does not know
// (a stricter length limit) must be isolatable like any other. A field
// holding a plain string is context, such as "name": the metric concerned.
func (e *apiError) readParams(raw json.RawMessage) []string {
	var params map[string]json.RawMessage
	if json.Unmarshal(raw, &params) != nil {
		return stringsOf(raw)
	}
	parts := make([]string, 0, len(params))
	for _, field := range slices.Sorted(maps.Keys(params)) {
		var msgs []string
		if json.Unmarshal(params[field], &msgs) != nil {
			// Context: a plain string (or anything else) blames nothing.
			if field == "name" {
				e.names = append(e.names, stringsOf(params[field])...)
			}
			continue
		}
		if field == "name" {
			// Librato may list the offending names here: a hint for the
			// search, never a conviction.
			e.names = append(e.names, msgs...)
		}
		e.fieldErrors = e.fieldErrors || len(msgs) > 0
		if len(msgs) > 0 {
			e.fields = append(e.fields, field)
		}
		for _, msg := range msgs {
			if m := invalidSource.FindStringSubmatch(msg); m != nil {
				e.sources = append(e.sources, m[1])
			}
			parts = append(parts, field+" "+msg)
		}
	}
	return parts
}

// stringsOf reads a JSON string or array of strings.
func stringsOf(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	return nil
}
