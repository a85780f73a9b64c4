package librato

import (
	"fmt"
	"strings"

	"github.com/influxdata/telegraf/filter"
)

// internalFilter matches Telegraf's own metrics (inputs.internal).
const internalFilter = "internal_*"

// internalTags are the tags inputs.internal uses to tell its series apart:
// internal_gather's input, internal_write's output, the alias of either,
// this plugin's url and reason, and inputs.librato_listener's address and
// status. A template without them merges, say, every output's
// internal_write into one source per host.
var internalTags = []string{"input", "output", "alias", "url", "reason", "address", "status"}

// maxTemplateChoices bounds the measurements whose template choice is
// remembered; past it the map starts over (measurement names are few, but
// nothing stops an input from inventing them).
const maxTemplateChoices = 10_000

// templateRule is one entry of templates: measurements matching filter get
// template.
type templateRule struct {
	filter   filter.Filter
	template int // index into sourceTemplates.texts
}

// sourceTemplates picks the legacy source template of a measurement, as
// outputs.graphite's templates do: the user's filtered entries first (first
// match wins), then the built-in rule for internal_*, then the default (the
// templates entry without a filter, or else template).
type sourceTemplates struct {
	texts  []string // distinct templates; a series cache key starts with the index
	rules  []templateRule
	chosen map[string]int // measurement → index into texts
}

// newSourceTemplates parses templates entries ("<filter> <template>" or a
// lone "<template>", the default) over the template option.
func newSourceTemplates(template string, entries []string) (*sourceTemplates, error) {
	st := &sourceTemplates{chosen: make(map[string]int)}
	def, hasDefault := template, false
	type parsed struct{ pattern, template string }
	var filtered []parsed
	for _, e := range entries {
		parts := strings.Fields(e)
		switch len(parts) {
		case 1:
			if hasDefault {
				return nil, fmt.Errorf("templates: %q is a second entry without a filter; keep one default", e)
			}
			def, hasDefault = parts[0], true
		case 2:
			filtered = append(filtered, parsed{parts[0], parts[1]})
		default:
			return nil, fmt.Errorf(`templates: %q is not "<measurement filter> <template>"`, e)
		}
	}
	st.texts = append(st.texts, def) // index 0: the default
	for _, p := range filtered {
		if err := st.add(p.pattern, p.template); err != nil {
			return nil, err
		}
	}
	// Last, so that a user's entry naming internal_* (or one of them) wins.
	if err := st.add(internalFilter, withInternalTags(def)); err != nil {
		return nil, err
	}
	return st, nil
}

func (st *sourceTemplates) add(pattern, template string) error {
	f, err := filter.Compile([]string{pattern})
	if err != nil {
		return fmt.Errorf("templates: invalid filter %q: %w", pattern, err)
	}
	i := 0
	for i < len(st.texts) && st.texts[i] != template {
		i++
	}
	if i == len(st.texts) {
		st.texts = append(st.texts, template)
	}
	st.rules = append(st.rules, templateRule{filter: f, template: i})
	return nil
}

// withInternalTags appends to template the internal tags it does not place
// yet, in internalTags' order; tags absent from a metric are skipped by the
// graphite serializer, so internal_agent keeps the template's source.
func withInternalTags(template string) string {
	out := template
	for _, k := range internalTags {
		if !templateHas(out, k) {
			out += "." + k
		}
	}
	return out
}

// choose returns the index of the measurement's template in texts. The
// choice is remembered: matching globs for every metric of every flush
// would cost more than the rest of the series lookup.
func (st *sourceTemplates) choose(measurement string) int {
	if i, ok := st.chosen[measurement]; ok {
		return i
	}
	i := 0
	for _, r := range st.rules {
		if r.filter.Match(measurement) {
			i = r.template
			break
		}
	}
	if len(st.chosen) >= maxTemplateChoices {
		st.chosen = make(map[string]int)
	}
	st.chosen[measurement] = i
	return i
}

// forMeasurement returns the measurement's template.
func (st *sourceTemplates) forMeasurement(measurement string) string {
	return st.texts[st.choose(measurement)]
}
