package librato

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
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
	transient             // network error, timeout, 5xx, rate limit: retry
	rejected              // 400/422: some measurement will never be accepted
	tooLarge              // 413: split the request
	fatal                 // 401, 403, 404, 415…: a setting is wrong; stop the flush
)

// maxErrorText bounds the part of a response body that reaches an error or
// a log line.
const maxErrorText = 1024

type outcome struct {
	kind       outcomeKind
	status     int
	retryAfter time.Duration
	err        error
	// reason is Librato's explanation, for the warning on dropped measurements.
	reason string
	// names and sources are the metric names and sources the error body
	// blames, to find the offending measurements in fewer requests.
	names, sources []string
}

// classify maps a response to an outcome. body is the (size-limited, already
// redacted) start of the response body.
func classify(status int, header http.Header, body []byte, tagged bool) outcome {
	o := outcome{status: status}
	if status >= 200 && status < 300 {
		o.kind = delivered
		return o
	}
	apiErr := parseAPIError(body)
	o.reason = apiErr.reason
	if o.reason == "" {
		o.reason = http.StatusText(status)
	}
	o.names, o.sources = apiErr.names, apiErr.sources
	o.err = fmt.Errorf("librato answered %d: %s", status, excerpt(body))
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		o.kind = transient
		o.retryAfter = retryAfter(header)
	case status == http.StatusForbidden && isRateLimit(body):
		o.kind = transient
		o.retryAfter = retryAfter(header)
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		o.kind = rejected
	case status == http.StatusRequestEntityTooLarge:
		o.kind = tooLarge
	default:
		o.kind = fatal
		o.err = fatalError(status, body, tagged)
	}
	return o
}

func isRateLimit(body []byte) bool {
	s := strings.ToLower(string(body))
	return strings.Contains(s, "api limit") || strings.Contains(s, "rate limit")
}

// fatalError tells the user which setting to fix.
func fatalError(status int, body []byte, tagged bool) error {
	hint := "check api_url"
	switch {
	case status == http.StatusUnauthorized:
		hint = "check api_user (the account email) and api_token"
	case status == http.StatusForbidden && tagged && strings.Contains(string(body), "not enabled"):
		hint = `tag-based measurements are not enabled for this account: set api = "legacy"`
	case status == http.StatusForbidden:
		hint = "check that api_token has record access and that api_url is HTTPS"
	case status == http.StatusUnsupportedMediaType:
		hint = `check content_encoding (Librato may not accept "gzip")`
	}
	return fmt.Errorf("librato answered %d (%s): %s", status, hint, excerpt(body))
}

func excerpt(body []byte) string {
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
	var e apiError
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
