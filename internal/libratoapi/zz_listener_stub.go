// Package libratoapi: TEMPORARY stub of the shared contract for the listener
// branch, replaced by the libratoapi branch on merge. Not streaming.
package libratoapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type Kind uint8

const (
	Gauge Kind = iota
	Counter
	Tagged
)

type Tag struct{ Key, Value string }

type Measurement struct {
	Kind                                                                Kind
	Name, Source                                                        string
	Tags                                                                []Tag
	Time                                                                int64
	Value                                                               float64
	HasValue                                                            bool
	Count                                                               int64
	Sum, Min, Max, SumSquares, Last, Stddev                             float64
	HasCount, HasSum, HasMin, HasMax, HasSumSquares, HasLast, HasStddev bool
}

type Window struct{ MaxAge, MaxFuture time.Duration }

type FieldError struct {
	Field, Message string
	TooOld         bool
}

type Error struct {
	Status int
	Body   []byte
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Body) }

func jsonBody(v any) []byte { b, _ := json.Marshal(v); return b }

func (e *FieldError) Legacy(name string) *Error {
	params := map[string]any{e.Field: []string{e.Message}}
	if name != "" && e.Field != "name" {
		params["name"] = name
	}
	return &Error{Status: http.StatusBadRequest, Body: jsonBody(map[string]any{"errors": map[string]any{"params": params}})}
}

func (e *FieldError) Tagged(name string) *Error {
	errs := map[string]any{"params": map[string]any{e.Field: []string{e.Message}}}
	if name != "" {
		errs["name"] = name
	}
	return &Error{Status: http.StatusBadRequest, Body: jsonBody(map[string]any{"errors": errs})}
}

func RequestError(status int, msg string) *Error {
	return &Error{Status: status, Body: jsonBody(map[string]any{"errors": map[string]any{"request": []string{msg}}})}
}

func TaggedSummary(total, accepted, failed, filtered int) []byte {
	return []byte(fmt.Sprintf(`{"measurements":{"summary":{"total":%d,"accepted":%d,"failed":%d,"filtered":%d}}}`, total, accepted, failed, filtered))
}

var (
	nameRe     = regexp.MustCompile(`\A[-.:_A-Za-z0-9]{1,255}\z`)
	tagNameRe  = regexp.MustCompile(`\A[-.:_\w]{1,64}\z`)
	tagValueRe = regexp.MustCompile(`\A[-.:_?\\/\w ]{1,255}\z`)
	errJSON    = RequestError(http.StatusBadRequest, "The JSON could not be parsed")
	errSchema  = &Error{Status: 400, Body: []byte(`{"code":400,"message":"Unable to process JSON"}`)}
)

func decode(body []byte) (map[string]any, bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

func fill(m *Measurement, o map[string]any) bool {
	ok := true
	set := func(k string, f *float64, h *bool) {
		if v, in := o[k]; in && v != nil {
			*f, *h = num(v)
			ok = ok && *h
		}
	}
	set("value", &m.Value, &m.HasValue)
	set("sum", &m.Sum, &m.HasSum)
	set("min", &m.Min, &m.HasMin)
	set("max", &m.Max, &m.HasMax)
	set("sum_squares", &m.SumSquares, &m.HasSumSquares)
	set("last", &m.Last, &m.HasLast)
	set("stddev", &m.Stddev, &m.HasStddev)
	var c float64
	set("count", &c, &m.HasCount)
	m.Count = int64(c)
	if t, in := o["measure_time"]; in {
		f, _ := num(t)
		m.Time = int64(f)
	}
	if t, in := o["time"]; in {
		f, _ := num(t)
		m.Time = int64(f)
	}
	return ok
}

func DecodeLegacyJSON(body []byte, dst []Measurement) ([]Measurement, *Error) {
	top, ok := decode(body)
	if !ok {
		return dst, errJSON
	}
	var def Measurement
	fill(&def, map[string]any{"measure_time": top["measure_time"]})
	src, _ := top["source"].(string)
	for i, k := range []string{"gauges", "counters"} {
		add := func(key string, v any) {
			o, _ := v.(map[string]any)
			m := Measurement{Kind: Kind(i), Name: key, Source: src, Time: def.Time}
			if n, ok := o["name"].(string); ok {
				m.Name = n
			}
			if s, ok := o["source"].(string); ok {
				m.Source = s
			}
			fill(&m, o)
			dst = append(dst, m)
		}
		switch l := top[k].(type) {
		case []any:
			for _, v := range l {
				add("", v)
			}
		case map[string]any:
			for key, v := range l {
				add(key, v)
			}
		}
	}
	if len(dst) == 0 {
		return dst, (&FieldError{Field: "gauges", Message: "must have at least one measurement"}).Legacy("")
	}
	return dst, nil
}

func DecodeLegacyForm(body []byte, dst []Measurement) ([]Measurement, *Error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return dst, RequestError(400, "The form could not be parsed")
	}
	top := map[string]any{"gauges": map[string]any{}, "counters": map[string]any{}}
	for k, v := range vals {
		if k == "source" || k == "measure_time" {
			top[k] = json.Number(v[0])
			if k == "source" {
				top[k] = v[0]
			}
			continue
		}
		parts := strings.Split(strings.NewReplacer("]", "").Replace(k), "[")
		if len(parts) != 3 {
			continue
		}
		g, _ := top[parts[0]].(map[string]any)
		if g == nil {
			continue
		}
		e, _ := g[parts[1]].(map[string]any)
		if e == nil {
			e = map[string]any{}
			g[parts[1]] = e
		}
		if parts[2] == "name" || parts[2] == "source" {
			e[parts[2]] = v[0]
		} else {
			e[parts[2]] = json.Number(v[0])
		}
	}
	b, _ := json.Marshal(top)
	return DecodeLegacyJSON(b, dst)
}

func DecodeTagged(body []byte, dst []Measurement) ([]Measurement, *Error) {
	top, ok := decode(body)
	if !ok {
		return dst, errSchema
	}
	tags := func(v any) []Tag {
		o, _ := v.(map[string]any)
		var t []Tag
		for k, v := range o {
			s, _ := v.(string)
			t = append(t, Tag{k, s})
		}
		return t
	}
	topTags := tags(top["tags"])
	var def Measurement
	fill(&def, map[string]any{"time": top["time"]})
	l, _ := top["measurements"].([]any)
	for _, v := range l {
		o, _ := v.(map[string]any)
		m := Measurement{Kind: Tagged, Tags: topTags, Time: def.Time}
		m.Name, _ = o["name"].(string)
		if o["tags"] != nil {
			m.Tags = tags(o["tags"])
		}
		fill(&m, o)
		dst = append(dst, m)
	}
	if len(dst) == 0 {
		return dst, (&FieldError{Field: "measurements", Message: "must have at least one measurement"}).Tagged("")
	}
	return dst, nil
}

func Validate(m *Measurement, now time.Time, w Window) *FieldError {
	switch {
	case !nameRe.MatchString(m.Name):
		return &FieldError{Field: "name", Message: m.Name + " is not a valid metric name"}
	case m.Kind != Tagged && m.Source != "" && (!nameRe.MatchString(m.Source) || strings.EqualFold(m.Source, "all")):
		return &FieldError{Field: "source", Message: m.Source + " is not a valid source name"}
	case m.HasValue && (math.IsNaN(m.Value) || math.IsInf(m.Value, 0)):
		return &FieldError{Field: "value", Message: "is not a number"}
	case m.HasCount && m.Count <= 0:
		return &FieldError{Field: "count", Message: "must be positive"}
	case m.HasCount && !m.HasSum:
		return &FieldError{Field: "sum", Message: "is required"}
	case !m.HasCount && !m.HasValue:
		return &FieldError{Field: "value", Message: "is required"}
	case m.Kind == Counter && m.Value < 0:
		return &FieldError{Field: "value", Message: "must be positive"}
	case m.Kind == Tagged && len(m.Tags) == 0:
		return &FieldError{Field: "tags", Message: "are required"}
	case m.Kind == Tagged && len(m.Tags) > 50:
		return &FieldError{Field: "tags", Message: "must not have more than 50 tags"}
	case w.MaxAge > 0 && m.Time != 0 && m.Time < now.Add(-w.MaxAge).Unix():
		f := "measure_time"
		if m.Kind == Tagged {
			f = "time"
		}
		return &FieldError{Field: f, Message: "is too far in the past", TooOld: true}
	}
	for _, t := range m.Tags {
		if !tagNameRe.MatchString(t.Key) || !tagValueRe.MatchString(t.Value) {
			return &FieldError{Field: "tags", Message: t.Key + " is not a valid tag"}
		}
	}
	return nil
}
