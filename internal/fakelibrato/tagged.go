package fakelibrato

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Tag rules from the tagged API docs; Go's \w is ASCII-only, as documented.
var (
	tagNameRe  = regexp.MustCompile(`\A[-.:_\w]{1,64}\z`)
	tagValueRe = regexp.MustCompile(`\A[-.:_?\\/\w ]{1,255}\z`)
)

const maxTags = 50

// The tagged API deserialises into a strict schema: any other key fails the
// whole request with "Unable to process JSON". Keys are case-sensitive.
var (
	taggedTopKeys  = keySet("tags", "time", "period", "measurements")
	taggedMeasKeys = keySet("name", "value", "count", "sum", "min", "max",
		"last", "stddev", "time", "period", "tags", "attributes")
	taggedNumKeys = []string{"value", "count", "sum", "min", "max", "last", "stddev", "time", "period"}
)

var (
	errSchema = &apiError{status: http.StatusBadRequest,
		body: map[string]any{"code": 400, "message": "Unable to process JSON"}}
	errTaggedDisabled = &apiError{status: http.StatusForbidden, body: map[string]any{
		"errors": []string{"Tag based measurements are not enabled for this account. Please contact support."}}}
)

func keySet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// taggedTop is the schema-checked top level of a tagged payload.
type taggedTop struct {
	tags  map[string]string
	time  any
	items []map[string]any
}

// decodeTagged validates a POST /v1/measurements body: schema first (as the
// deserialiser would), then per-measurement rules.
func (s *Server) decodeTagged(body []byte) outcome {
	out := s.decodeTaggedBody(body)
	if s.opts.TaggedDisabled {
		out.err = errTaggedDisabled // account-level refusal beats validation
	}
	return out
}

func (s *Server) decodeTaggedBody(body []byte) outcome {
	v, err := decodeJSON(body)
	if err != nil {
		return outcome{err: errSchema}
	}
	top, ok := parseTaggedTop(v)
	if !ok {
		return outcome{err: errSchema}
	}
	out := outcome{status: http.StatusAccepted}
	var c checker
	failedName := ""
	if len(top.items) == 0 {
		c.fail("measurements", "must have at least one measurement")
	}
	for _, item := range top.items {
		var own checker
		m := s.measurement(&own, item, top)
		if own.err != nil && c.err == nil {
			c.err, failedName = own.err, m.Name
		}
		out.measurements = append(out.measurements, m)
	}
	if c.err != nil {
		out.err = s.taggedError(c.err, failedName)
	}
	return out
}

// parseTaggedTop checks the structure and JSON types of the whole payload.
func parseTaggedTop(v any) (taggedTop, bool) {
	obj, ok := v.(map[string]any)
	if !ok || !onlyKeys(obj, taggedTopKeys) || !numbersOrNull(obj, "time", "period") {
		return taggedTop{}, false
	}
	tags, ok := tagObject(obj["tags"])
	if !ok {
		return taggedTop{}, false
	}
	top := taggedTop{tags: tags, time: obj["time"]}
	list, ok := obj["measurements"].([]any)
	if !ok && obj["measurements"] != nil {
		return taggedTop{}, false
	}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok || !validMeasurementSchema(m) {
			return taggedTop{}, false
		}
		top.items = append(top.items, m)
	}
	return top, true
}

func validMeasurementSchema(m map[string]any) bool {
	if !onlyKeys(m, taggedMeasKeys) || !numbersOrNull(m, taggedNumKeys...) {
		return false
	}
	if _, ok := m["name"].(string); !ok && m["name"] != nil {
		return false
	}
	if _, ok := m["attributes"].(map[string]any); !ok && m["attributes"] != nil {
		return false
	}
	_, ok := tagObject(m["tags"])
	return ok
}

func onlyKeys(m map[string]any, allowed map[string]bool) bool {
	for k := range m {
		if !allowed[k] {
			return false
		}
	}
	return true
}

func numbersOrNull(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k].(json.Number); !ok && m[k] != nil {
			return false
		}
	}
	return true
}

// tagObject converts a JSON tags object; nil means "not given". Non-string
// values do not fit the schema.
func tagObject(v any) (map[string]string, bool) {
	if v == nil {
		return nil, true
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	tags := make(map[string]string, len(obj))
	for k, raw := range obj {
		str, ok := raw.(string)
		if !ok {
			return nil, false
		}
		tags[k] = str
	}
	return tags, true
}

// measurement converts and validates one schema-valid measurement.
func (s *Server) measurement(c *checker, item map[string]any, top taggedTop) Measurement {
	m := Measurement{Name: taggedName(c, item)}
	tags := top.tags
	if item["tags"] != nil {
		tags, _ = tagObject(item["tags"]) // own tags replace, never merge
	}
	m.Tags = checkTags(c, tags)
	taggedValues(c, item, &m)
	m.Time = s.taggedTime(c, item, top)
	return m
}

func taggedName(c *checker, item map[string]any) string {
	name, _ := item["name"].(string)
	switch {
	case name == "":
		c.fail("name", "is required")
	case !metricNameRe.MatchString(name):
		c.fail("name", fmt.Sprintf("%s is not a valid metric name", name))
	}
	return name
}

// checkTags validates the effective tags and returns them lower-cased, as
// Librato stores them.
func checkTags(c *checker, tags map[string]string) map[string]string {
	switch {
	case len(tags) == 0:
		c.fail("tags", "are required")
	case len(tags) > maxTags:
		c.fail("tags", fmt.Sprintf("must not have more than %d tags", maxTags))
	}
	out := make(map[string]string, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		if !tagNameRe.MatchString(k) {
			c.fail("tags", fmt.Sprintf("%s is not a valid tag name", k))
		}
		if !tagValueRe.MatchString(v) {
			c.fail("tags", fmt.Sprintf("%s is not a valid tag value", v))
		}
		out[strings.ToLower(k)] = strings.ToLower(v)
	}
	return out
}

// taggedValues enforces "value xor count+sum".
func taggedValues(c *checker, item map[string]any, m *Measurement) {
	hasValue := item["value"] != nil
	switch {
	case item["count"] != nil:
		if hasValue {
			c.fail("value", "must not be present when count is given")
		}
		taggedSummary(c, item, m)
	case hasValue:
		m.Value = number(c, "value", item["value"])
	default:
		c.fail("value", "is required")
	}
}

func taggedSummary(c *checker, item map[string]any, m *Measurement) {
	if n, ok := integer(c, "count", item["count"]); ok {
		m.Count = n
		if n <= 0 {
			c.fail("count", "must be positive")
		}
	}
	if item["sum"] != nil {
		m.Sum = number(c, "sum", item["sum"])
	} else {
		c.fail("sum", "is required")
	}
	m.Min, m.HasMin = optionalNumber(c, item, "min")
	m.Max, m.HasMax = optionalNumber(c, item, "max")
	m.Last, m.HasLast = optionalNumber(c, item, "last")
	m.StdDev, m.HasStdDev = optionalNumber(c, item, "stddev")
}

// taggedTime: own time, else the top-level one, else the receive time.
func (s *Server) taggedTime(c *checker, item map[string]any, top taggedTop) int64 {
	raw := item["time"]
	if raw == nil {
		raw = top.time
	}
	if raw == nil {
		return s.opts.Now().Unix()
	}
	return s.unixTime(c, "time", raw)
}

// taggedError builds {"errors":{"params":{"<field>":["<msg>"]},"name":"<metric>"}}.
func (s *Server) taggedError(fe *fieldError, name string) *apiError {
	errs := map[string]any{"params": map[string]any{fe.field: []string{fe.msg}}}
	if name != "" {
		errs["name"] = name
	}
	body := map[string]any{"errors": errs}
	if fe.tooOld {
		body["request_time"] = s.opts.Now().Unix()
	}
	return &apiError{status: http.StatusBadRequest, body: body}
}

// storeTagged commits all measurements of an accepted request at once.
func (s *Server) storeTagged(ex *exchange, out outcome) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex.gen == s.gen {
		s.measurements = append(s.measurements, cloneMeasurements(out.measurements)...)
	}
	return nil
}
