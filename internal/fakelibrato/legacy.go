package fakelibrato

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// metricKind remembers whether a legacy name is a gauge or a counter:
// Librato refuses to change a metric's type.
type metricKind int

const (
	kindGauge metricKind = iota + 1
	kindCounter
)

func (k metricKind) String() string {
	if k == kindCounter {
		return "counter"
	}
	return "gauge"
}

// legacyEntry is one gauge/counter object; key is its name in the object
// form of "gauges"/"counters" and empty in the array form.
type legacyEntry struct {
	key    string
	fields map[string]any
}

// legacyDefaults are the top-level values entries inherit.
type legacyDefaults struct {
	source, measureTime any
}

// decodeLegacy validates a POST /v1/metrics body. Every entry is converted
// even after the first error so the fault hook sees all gauges.
func (s *Server) decodeLegacy(body []byte) outcome {
	v, err := decodeJSON(body)
	top, isObj := v.(map[string]any)
	if err != nil || !isObj {
		return outcome{err: errLegacyJSON}
	}
	var c checker
	gauges := legacyEntries(&c, top, "gauges")
	counters := legacyEntries(&c, top, "counters")
	out := outcome{status: http.StatusOK}
	if len(gauges)+len(counters) == 0 && c.err == nil {
		c.fail("gauges", "must have at least one measurement")
	}
	d := legacyDefaults{source: top["source"], measureTime: top["measure_time"]}
	name := ""
	for _, e := range gauges {
		out.gauges = append(out.gauges, s.record(&c, &name, e, d, kindGauge))
	}
	for _, e := range counters {
		out.counters = append(out.counters, s.record(&c, &name, e, d, kindCounter))
	}
	if c.err != nil {
		out.err = s.legacyError(c.err, name)
	}
	return out
}

// record converts one entry, noting the metric name of the first failing
// entry for the error body.
func (s *Server) record(c *checker, failedName *string, e legacyEntry, d legacyDefaults, k metricKind) Gauge {
	var own checker
	g := s.legacyGauge(&own, e, d, k)
	if own.err != nil && c.err == nil {
		c.err, *failedName = own.err, g.Name
	}
	return g
}

// legacyEntries accepts both documented forms: an array of objects, or an
// object keyed by metric name (sorted, since JSON objects are unordered).
func legacyEntries(c *checker, top map[string]any, field string) []legacyEntry {
	switch list := top[field].(type) {
	case nil:
		return nil
	case []any:
		out := make([]legacyEntry, 0, len(list))
		for _, item := range list {
			out = append(out, entryOf(c, field, "", item))
		}
		return out
	case map[string]any:
		keys := slices.Sorted(maps.Keys(list))
		out := make([]legacyEntry, 0, len(keys))
		for _, k := range keys {
			out = append(out, entryOf(c, field, k, list[k]))
		}
		return out
	default:
		c.fail(field, "is invalid")
		return nil
	}
}

func entryOf(c *checker, field, key string, item any) legacyEntry {
	m, ok := item.(map[string]any)
	if !ok {
		c.fail(field, "is invalid")
		m = map[string]any{}
	}
	return legacyEntry{key: key, fields: m}
}

// legacyGauge converts and validates one entry; unknown keys are ignored
// because the legacy API is lenient about them.
func (s *Server) legacyGauge(c *checker, e legacyEntry, d legacyDefaults, k metricKind) Gauge {
	g := Gauge{Name: legacyName(c, e)}
	g.Source = legacySource(c, e.fields, d.source)
	g.MeasureTime = s.measureTime(c, e.fields, d.measureTime)
	switch {
	case k == kindCounter:
		g.Value = counterValue(c, e.fields)
	case present(e.fields, "count"):
		complexGauge(c, e.fields, &g)
	case present(e.fields, "value"):
		g.Value = number(c, "value", e.fields["value"])
	default:
		c.fail("value", "is required")
	}
	return g
}

// legacyName: an inner "name" overrides the object key.
func legacyName(c *checker, e legacyEntry) string {
	name := e.key
	if present(e.fields, "name") {
		str, isStr := e.fields["name"].(string)
		if !isStr {
			c.fail("name", "is invalid")
			return ""
		}
		name = str
	}
	switch {
	case name == "":
		c.fail("name", "is required")
	case !metricNameRe.MatchString(name):
		c.fail("name", fmt.Sprintf("%s is not a valid metric name", name))
	}
	return name
}

func legacySource(c *checker, fields map[string]any, def any) string {
	raw := def
	if present(fields, "source") {
		raw = fields["source"]
	}
	if raw == nil {
		return ""
	}
	src, ok := raw.(string)
	if !ok || !metricNameRe.MatchString(src) || strings.EqualFold(src, "all") {
		c.fail("source", fmt.Sprintf("%v is not a valid source name", raw))
	}
	return src
}

func (s *Server) measureTime(c *checker, fields map[string]any, def any) int64 {
	raw := def
	if present(fields, "measure_time") {
		raw = fields["measure_time"]
	}
	if raw == nil {
		return 0
	}
	return s.unixTime(c, "measure_time", raw)
}

// unixTime checks an integral timestamp against the MaxPast window.
func (s *Server) unixTime(c *checker, field string, raw any) int64 {
	t, ok := integer(c, field, raw)
	if ok && s.opts.MaxPast > 0 && t < s.opts.Now().Add(-s.opts.MaxPast).Unix() {
		c.failTooOld(field)
	}
	return t
}

func counterValue(c *checker, fields map[string]any) float64 {
	if !present(fields, "value") {
		c.fail("value", "is required")
		return 0
	}
	v := number(c, "value", fields["value"])
	if v < 0 {
		c.fail("value", "must be positive")
	}
	return v
}

// complexGauge fills a summary gauge: count > 0 and sum are mandatory, and
// a plain value must not be mixed in.
func complexGauge(c *checker, fields map[string]any, g *Gauge) {
	if present(fields, "value") {
		c.fail("value", "must not be present when count is given")
	}
	if n, ok := integer(c, "count", fields["count"]); ok {
		g.Count = n
		if n <= 0 {
			c.fail("count", "must be positive")
		}
	}
	if present(fields, "sum") {
		g.Sum = number(c, "sum", fields["sum"])
	} else {
		c.fail("sum", "is required")
	}
	g.Min, g.HasMin = optionalNumber(c, fields, "min")
	g.Max, g.HasMax = optionalNumber(c, fields, "max")
	g.SumSquares, g.HasSumSquares = optionalNumber(c, fields, "sum_squares")
}

// legacyError builds {"errors":{"params":{"<field>":["<msg>"],"name":"<metric>"}}};
// the metric name is context only and left out when the name itself is bad.
func (s *Server) legacyError(fe *fieldError, name string) *apiError {
	params := map[string]any{fe.field: []string{fe.msg}}
	if name != "" && fe.field != "name" {
		params["name"] = name
	}
	body := map[string]any{"errors": map[string]any{"params": params}}
	if fe.tooOld {
		body["request_time"] = s.opts.Now().Unix()
	}
	return &apiError{status: http.StatusBadRequest, body: body}
}

// storeLegacy commits atomically: a type conflict with an earlier request
// (or within this one) rejects the whole payload, like Librato.
func (s *Server) storeLegacy(ex *exchange, out outcome) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex.gen != s.gen {
		return nil // Reset happened mid-request: accept but forget
	}
	pending := map[string]metricKind{}
	if e := s.claimKinds(pending, out.gauges, kindGauge); e != nil {
		return e
	}
	if e := s.claimKinds(pending, out.counters, kindCounter); e != nil {
		return e
	}
	for name, k := range pending {
		s.kinds[name] = k
	}
	s.gauges = append(s.gauges, out.gauges...)
	s.counters = append(s.counters, out.counters...)
	return nil
}

// claimKinds must be called with s.mu held. Names are case-insensitive.
func (s *Server) claimKinds(pending map[string]metricKind, list []Gauge, k metricKind) *apiError {
	for _, g := range list {
		key := strings.ToLower(g.Name)
		have, ok := pending[key]
		if !ok {
			have, ok = s.kinds[key]
		}
		if ok && have != k {
			msg := fmt.Sprintf("'%s' is a %s, but was submitted as different type", g.Name, have)
			return s.legacyError(&fieldError{field: "type", msg: msg}, g.Name)
		}
		pending[key] = k
	}
	return nil
}
