package libratoapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error is a complete answer: an HTTP status and Librato's error JSON.
type Error struct {
	Status int
	Body   []byte
}

func (e *Error) Error() string {
	return "librato: " + strconv.Itoa(e.Status) + " " + string(e.Body)
}

// Legacy is the /v1/metrics answer for e:
// 400 {"errors":{"params":{"<field>":["msg"],"name":"<metric>"}}}, with a
// top-level request_time when the time is too old. The metric name is
// context only, left out when it is empty or is itself the problem.
func (e *FieldError) Legacy(name string) *Error {
	params := map[string]any{e.Field: []string{e.Message}}
	if name != "" && e.Field != "name" {
		params["name"] = name
	}
	return e.answer(map[string]any{"params": params})
}

// Tagged is the /v1/measurements answer for e:
// 400 {"errors":{"params":{"<field>":["msg"]},"name":"<metric>"}}, with a
// top-level request_time when the time is too old.
func (e *FieldError) Tagged(name string) *Error {
	errs := map[string]any{"params": map[string]any{e.Field: []string{e.Message}}}
	if name != "" {
		errs["name"] = name
	}
	return e.answer(errs)
}

func (e *FieldError) answer(errs map[string]any) *Error {
	body := map[string]any{"errors": errs}
	if e.TooOld {
		body["request_time"] = e.RequestTime
	}
	return &Error{Status: http.StatusBadRequest, Body: marshal(body)}
}

// RequestError is an answer of the {"errors":{"request":["msg"]}} shape.
func RequestError(status int, msg string) *Error {
	return &Error{Status: status, Body: marshal(map[string]any{
		"errors": map[string]any{"request": []string{msg}},
	})}
}

// Messages of request-level answers the decoders give.
const (
	// MsgLegacyParse answers a /v1/metrics body that is not a JSON object.
	MsgLegacyParse = "The JSON could not be parsed"
	// MsgFormParse answers a form body that is not valid URL encoding.
	MsgFormParse = "The form body could not be parsed"
)

// taggedSchemaBody is the tagged API's answer to anything its strict
// deserialiser refuses (librato-api.md §2, statsd-librato-backend#91).
const taggedSchemaBody = `{"code":400,"message":"Unable to process JSON"}`

// TaggedSchemaError is the 400 {"code":400,"message":"Unable to process JSON"}
// answer; each call returns its own copy so callers may keep it.
func TaggedSchemaError() *Error {
	return &Error{Status: http.StatusBadRequest, Body: []byte(taggedSchemaBody)}
}

// LegacyParseError is the 400 answer to a /v1/metrics body that does not parse.
func LegacyParseError() *Error { return RequestError(http.StatusBadRequest, MsgLegacyParse) }

// TaggedSummary is the 202 body of /v1/measurements:
// {"measurements":{"summary":{"total":N,"accepted":N,"failed":N,"filtered":N}}},
// the shape clients such as Micrometer check for "failed":0.
func TaggedSummary(total, accepted, failed, filtered int) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"measurements":{"summary":{"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"accepted":`...)
	b = strconv.AppendInt(b, int64(accepted), 10)
	b = append(b, `,"failed":`...)
	b = strconv.AppendInt(b, int64(failed), 10)
	b = append(b, `,"filtered":`...)
	b = strconv.AppendInt(b, int64(filtered), 10)
	return append(b, "}}}"...)
}

// marshal encodes the error bodies built above. They hold only strings,
// slices, maps and integers, which json.Marshal cannot fail on; the
// fallback is Librato's "system" error shape so a caller never sends "".
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"errors":{"system":["internal error"]}}`)
	}
	return b
}

// taggedOffBody is the answer of an account without tag-based measurements.
const taggedOffBody = `{"errors":["Tag based measurements are not enabled for this account. Please contact support."]}`

// TaggedNotEnabledError is the 403 answer of /v1/measurements for an account
// without tag-based measurements; each call returns its own copy.
func TaggedNotEnabledError() *Error {
	return &Error{Status: http.StatusForbidden, Body: []byte(taggedOffBody)}
}

// MsgCredentials is the message of the 401 answer to missing or wrong
// credentials: RequestError(http.StatusUnauthorized, MsgCredentials).
const MsgCredentials = "Credentials are required to access this resource."
