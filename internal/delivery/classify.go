package delivery

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
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
}

// classify maps a response to an outcome. body is the (size-limited, already
// redacted) start of the response body; now reads HTTP-date Retry-After.
func classify(status int, header http.Header, body []byte, tagged bool, now time.Time) outcome {
	o := outcome{status: status}
	if status >= 200 && status < 300 {
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

// Proof is what lets the plugin drop a measurement instead of keeping it
// buffered. See "Delivery" in the README.
//
// A request carrying this one measurement was answered 400/422 by Librato
// itself (its error JSON names an invalid field), and the endpoint has
// accepted other requests, so it is the measurement, not the endpoint, a
// proxy or the account, that Librato refuses.
func proven(o outcome, measurements int, endpointAccepts bool) bool {
	return o.kind == rejected && measurements == 1 && endpointAccepts
}

// acceptedWithFailures reads a tagged 2xx body:
// {"measurements":{"summary":{"total":N,"accepted":N,"failed":N,"filtered":N}}},
// and a non-empty "errors", which clients have seen beside a partial success.
func acceptedWithFailures(body []byte) (failed int, errs string) {
	if len(body) == 0 {
		return 0, ""
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
		return 0, ""
	}
	switch string(doc.Errors) {
	case "", "null", "[]", "{}":
	default:
		errs = Excerpt(doc.Errors)
	}
	return max(doc.Measurements.Summary.Failed, 0), errs
}

// IsRateLimit: the body is Librato's "API limit" or a "rate limit" answer.
func IsRateLimit(body []byte) bool {
	s := strings.ToLower(string(body))
	return strings.Contains(s, "api limit") || strings.Contains(s, "rate limit")
}

// RedirectError: a redirect is never followed. Go would turn the POST into a
// bodyless GET (silently storing nothing) and may send the credentials to
// the new location, so the user is told to point api_url there instead.
func RedirectError(status int, location string) error {
	if location == "" {
		return fmt.Errorf("librato answered %d, a redirect without a location: check api_url", status)
	}
	if u, err := url.Parse(location); err == nil {
		u.User = nil
		location = u.String()
	} else {
		location = "(unparseable)"
	}
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
	hint := "check api_url"
	switch {
	case status == http.StatusUnauthorized:
		hint = "check api_user (the account email) and api_token"
	case status == http.StatusForbidden && tagged && strings.Contains(string(body), "not enabled"):
		return fmt.Errorf(`librato answered 403 (%w: set api = "legacy" or "auto"): %s`, ErrTagsNotEnabled, Excerpt(body))
	case status == http.StatusForbidden:
		hint = "check that api_token has record access and that api_url is HTTPS"
	case status == http.StatusUnsupportedMediaType:
		hint = `check content_encoding (Librato may not accept "gzip")`
	}
	return fmt.Errorf("librato answered %d (%s): %s", status, hint, Excerpt(body))
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
// messages blame; "name" is context, not an error of its own.
func (e *apiError) readParams(raw json.RawMessage) []string {
	var params map[string]json.RawMessage
	if json.Unmarshal(raw, &params) != nil {
		return stringsOf(raw)
	}
	var parts []string
	for _, field := range slices.Sorted(maps.Keys(params)) {
		msgs := stringsOf(params[field])
		if field == "name" {
			e.names = append(e.names, msgs...)
			continue
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
