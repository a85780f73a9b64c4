package librato

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"

	"github.com/seed-d22a899f/librato/internal/delivery"
)

// Conversion buffers are kept between flushes up to these sizes (about
// 1.75 MiB of 56-byte points, enough for a flush of several thousand metrics);
// a larger flush gets buffers of its own, let go when it is done, so that
// one huge flush does not stay on the heap for good.
const (
	retainedPoints = 32 << 10
	retainedFields = 1 << 10
)

type converterConfig struct {
	tagged            bool
	template          string
	templates         []string // "<filter> <template>" entries over template
	sourceOverrideTag string
	defaultSource     string
	tagsInclude       []string
	tagsExclude       []string
	extraTags         map[string]string
	summaries         bool
	// tagSeed seeds the series' TagSet hash. Both converters of api = "auto"
	// must share it: the ledger's keys are then the same for both APIs.
	// Zero means a seed of the converter's own.
	tagSeed maphash.Seed
	// names, when set, is a name cache shared with the other API's
	// converter: names follow the same rules in both, and a name shortened
	// once is counted (names_shortened) and logged once. Nil means a cache
	// of the converter's own.
	names *nameCache
}

// The converter's output types live with the delivery core that sends them.
type (
	series  = delivery.Series
	point   = delivery.Measurement
	summary = delivery.Summary
)

// converter turns Telegraf metrics into points. It keeps its caches and
// output slice between flushes, so a steady workload converts without
// allocating.
type converter struct {
	cfg       converterConfig
	tagFilter filter.Filter
	templates *sourceTemplates
	extraTags [][2]string
	log       telegraf.Logger
	stats     *stats

	names  *nameCache
	series seriesCache
	key    []byte // scratch: the series cache key of a metric
	points []point
	sums   []summary // what the points' summaries point to
	used   []bool    // per field of a metric: part of a summary
	drops  dropLog
}

func newConverter(cfg converterConfig, st *stats, log telegraf.Logger) (*converter, error) {
	if cfg.tagSeed == (maphash.Seed{}) {
		cfg.tagSeed = maphash.MakeSeed()
	}
	c := &converter{cfg: cfg, log: log, stats: st, names: cfg.names}
	if c.names == nil {
		c.names = newNameCache()
	}
	c.series.startOver()
	t, err := newSourceTemplates(cfg.template, cfg.templates)
	if err != nil {
		return nil, err
	}
	c.templates = t
	if len(cfg.tagsInclude) > 0 || len(cfg.tagsExclude) > 0 {
		f, err := filter.NewIncludeExcludeFilter(cfg.tagsInclude, cfg.tagsExclude)
		if err != nil {
			return nil, fmt.Errorf("invalid tags_include/tags_exclude: %w", err)
		}
		c.tagFilter = f
	}
	for k, v := range cfg.extraTags {
		c.extraTags = append(c.extraTags, [2]string{k, v})
	}
	slices.SortFunc(c.extraTags, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	if cfg.defaultSource != "" {
		src := sanitizeName(cfg.defaultSource)
		if src != cfg.defaultSource || len(src) > maxSourceLen || strings.EqualFold(src, "all") {
			return nil, fmt.Errorf("invalid default_source %q: use at most %d of A-Za-z0-9 . _ - and not \"all\"",
				cfg.defaultSource, maxSourceLen)
		}
	}
	return c, nil
}

// convert returns the points of all metrics. The slice is reused by the next
// call; release it with release when the flush is done with it. What it
// drops is reported only by reportDrops: with api = "auto" the flush may
// still go to the other API, whose conversion drops other things.
func (c *converter) convert(metrics []telegraf.Metric) []point {
	fields := 0
	for _, m := range metrics {
		fields += len(m.FieldList())
	}
	c.points = slices.Grow(c.points[:0], fields) // one allocation, not log(n) copies
	c.sums = c.sums[:0]
	c.drops.reset()
	for _, m := range metrics {
		c.convertMetric(m)
	}
	return c.points
}

// dropped is how many measurements the last convert dropped for reason.
func (c *converter) dropped(reason dropReason) int { return c.drops.count[reason] }

// reportDrops logs and counts the last convert's drops. The plugin calls it
// once a Write is delivered, for the API the Write finally used: a failed
// Write's metrics come back in Telegraf's retry, which would count them
// again, and a conversion the Write did not send (the tagged one, before a
// fallback to legacy) dropped nothing.
func (c *converter) reportDrops() {
	c.drops.report(c.log, c.stats)
	c.drops.reset()
}

// release ends a flush's use of the points: it drops their references
// (which may hold series and names the caches have since forgotten) and
// lets go of buffers larger than the retained sizes.
func (c *converter) release() {
	clear(c.points)
	c.points = c.points[:0]
	if cap(c.points) > retainedPoints {
		c.points = nil
	}
	if cap(c.sums) > retainedPoints/8 {
		c.sums = nil
	}
	if cap(c.used) > retainedFields {
		c.used = nil
	}
	if cap(c.key) > maxCachedEntryBytes {
		c.key = nil
	}
}

func (c *converter) convertMetric(m telegraf.Metric) {
	t := m.Time().Unix()
	if t <= 0 {
		// Librato takes Unix seconds after the epoch; the built-in plugin
		// skips 0 too.
		c.dropMetric(m, reasonInvalidTime, fmt.Sprintf("metric time %d is not after the Unix epoch", t))
		return
	}
	s := c.seriesFor(m)
	if s.Problem != "" {
		c.dropMetric(m, dropReason(s.Reason), s.Problem)
		return
	}
	fields := m.FieldList()
	c.used = slices.Grow(c.used[:0], len(fields))[:len(fields)]
	clear(c.used)
	if c.cfg.summaries {
		c.appendSummaries(m, fields, s, t)
	}
	names := c.names.fields(m.Name())
	for i, f := range fields {
		if c.used[i] {
			continue
		}
		v, ok := toFloat(f.Value)
		if !ok {
			// Librato stores numbers only; the built-in plugin skips
			// strings silently too. Guarded: boxing the arguments would
			// allocate on every flush.
			if c.log.Level().Includes(telegraf.Debug) {
				c.log.Debugf("Skipping string field %s.%s", m.Name(), f.Key)
			}
			continue
		}
		var name libratoName
		name, names = c.nameFor(names, m.Name(), f.Key)
		if name.text == "" {
			c.dropPoint(name.text, s, reasonEmptyName, "the metric has no name (Librato requires one)")
			continue
		}
		if reason, problem := valueProblem(v); problem != "" {
			c.dropPoint(name.text, s, reason, problem)
			continue
		}
		c.points = append(c.points, point{Name: name.text, NameHash: name.hash, Series: s, Time: t, Value: v})
	}
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// nameFor returns the Librato name of a field: "measurement.field", or the
// measurement alone for a field called "value". names is the measurement's
// name cache, as nameCache.fields or the previous nameFor returned it.
func (c *converter) nameFor(names map[string]libratoName, measurement, field string) (libratoName, map[string]libratoName) {
	if name, ok := names[field]; ok {
		return name, names
	}
	text := measurement
	if field != "value" {
		text = measurement + "." + field
	}
	text = c.shorten(sanitizeName(text), maxNameLen)
	// Hashed here, once per name the cache holds, for the screens.
	name := libratoName{text: text, hash: foldHash(text)}
	return name, c.names.remember(names, measurement, field, name)
}

func (c *converter) shorten(s string, limit int) string {
	short, cut := shorten(s, limit)
	if cut {
		c.stats.shortened.Incr(1)
		c.log.Debugf("Shortened %q to %q: Librato allows %d characters", s, short, limit)
	}
	return short
}

// seriesFor returns the cached series of the metric's tag set.
func (c *converter) seriesFor(m telegraf.Metric) *series {
	tags := m.TagList()
	size := 0
	for _, t := range tags {
		size += len(t.Key) + len(t.Value) + 2*binary.MaxVarintLen64
	}
	// A legacy source depends on the measurement's template too: the key
	// starts with its index, so internal_write and cpu of one host, cached
	// apart, each keep the source of their own template.
	tmpl := 0
	if !c.cfg.tagged {
		tmpl = c.templates.choose(m.Name())
	}
	if size > maxCachedEntryBytes {
		return c.newSeries(m, tmpl) // would not be cached: skip copying the key
	}
	c.key = binary.AppendUvarint(c.key[:0], uint64(tmpl))
	c.key = appendTagSetKey(c.key, tags)
	if s, ok := c.series.get(c.key); ok {
		return s
	}
	s := c.newSeries(m, tmpl)
	c.series.remember(c.key, s)
	return s
}

// newSeries makes the series of the metric's tag set: its identity for the
// screens (a tagged series gets it from taggedSeries, which has the tag
// pairs) and its TagSet for the ledger.
func (c *converter) newSeries(m telegraf.Metric, tmpl int) *series {
	s := c.buildSeries(m, c.templates.texts[tmpl])
	if s.Problem == "" && !c.cfg.tagged {
		s.Identity = foldHash(s.Source) // Librato merges WEB1 and web1
	}
	s.TagSet = tagSetHash(c.cfg.tagSeed, m.TagList())
	return s
}

// appendTagSetKey appends the series cache key of a tag set: each tag's key
// and value, each preceded by its length. Lengths, not terminators: a tag
// value may hold any byte, 0 included, and {a: "x", b: "y"} must not read
// like {a: "x\x00b\x00y"}.
func appendTagSetKey(dst []byte, tags []*telegraf.Tag) []byte {
	for _, t := range tags {
		dst = binary.AppendUvarint(dst, uint64(len(t.Key)))
		dst = append(dst, t.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(t.Value)))
		dst = append(dst, t.Value...)
	}
	return dst
}

// tagSetHash hashes the bytes of the series cache key (appendTagSetKey)
// without building them: a tag set too large for the cache gets the same
// hash it would have had in it. It depends on the raw tags only, not on the
// API's conversion of them.
func tagSetHash(seed maphash.Seed, tags []*telegraf.Tag) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var n [binary.MaxVarintLen64]byte
	for _, t := range tags {
		_, _ = h.Write(binary.AppendUvarint(n[:0], uint64(len(t.Key))))
		_, _ = h.WriteString(t.Key)
		_, _ = h.Write(binary.AppendUvarint(n[:0], uint64(len(t.Value))))
		_, _ = h.WriteString(t.Value)
	}
	return h.Sum64()
}

func (c *converter) buildSeries(m telegraf.Metric, template string) *series {
	override, hasOverride := "", false
	if c.cfg.sourceOverrideTag != "" {
		override, hasOverride = m.GetTag(c.cfg.sourceOverrideTag)
	}
	if c.cfg.tagged {
		return c.taggedSeries(m, override, hasOverride)
	}
	if hasOverride && override != "" {
		return c.legacySeries(sanitizeName(override), fmt.Sprintf("tag %q", c.cfg.sourceOverrideTag))
	}
	tags := m.Tags()
	if c.cfg.sourceOverrideTag != "" {
		delete(tags, c.cfg.sourceOverrideTag)
	}
	bucket := graphite.InsertField(graphite.SerializeBucketName("", tags, template, ""), "value")
	return c.legacySeries(sanitizeName(bucket), fmt.Sprintf("template %q", template))
}

func (c *converter) legacySeries(source, origin string) *series {
	problem := ""
	switch {
	case source == "":
		problem = origin + " resolved to an empty source"
	case strings.EqualFold(source, "all"):
		problem = origin + ` resolved to source "all", which Librato reserves`
	}
	if problem == "" {
		return &series{Source: c.shorten(source, maxSourceLen)}
	}
	if c.cfg.defaultSource != "" {
		return &series{Source: c.cfg.defaultSource}
	}
	return &series{Problem: problem + " (set default_source to keep such metrics)", Reason: int(reasonEmptySource)}
}

// taggedSeries builds the tag set: extra_tags first, then the source
// override as "source", then the metric's tags in key order, up to Librato's
// limit of 50; keys that collide after sanitising keep their first value.
func (c *converter) taggedSeries(m telegraf.Metric, override string, hasOverride bool) *series {
	var tags tagSet
	for _, kv := range c.extraTags {
		tags.add(kv[0], kv[1])
	}
	if hasOverride {
		tags.add("source", override)
	}
	for _, t := range m.TagList() {
		if t.Key == c.cfg.sourceOverrideTag || c.tagFilter != nil && !c.tagFilter.Match(t.Key) {
			continue
		}
		tags.add(t.Key, t.Value)
	}
	if tags.truncated > 0 {
		c.log.Debugf("Metric %q has more than %d tags: %d left out", m.Name(), maxTags, tags.truncated)
	}
	if len(tags.pairs) == 0 {
		return &series{Problem: "no tags to send (Librato's tagged API requires one; see extra_tags)", Reason: int(reasonNoTags)}
	}
	return &series{Tags: string(appendTagObject(nil, tags.pairs)), Identity: tagsIdentity(tags.pairs)}
}

type tagSet struct {
	pairs     [][2]string
	truncated int
}

func (ts *tagSet) add(key, value string) {
	key, _ = shorten(sanitizeTag(key, isTagNameByte), maxTagNameLen)
	value, _ = shorten(sanitizeTag(value, isTagValueByte), maxTagValueLen)
	if key == "" || value == "" {
		return
	}
	for _, p := range ts.pairs {
		if p[0] == key {
			return
		}
	}
	if len(ts.pairs) == maxTags {
		ts.truncated++
		return
	}
	ts.pairs = append(ts.pairs, [2]string{key, value})
}

func (c *converter) dropMetric(m telegraf.Metric, reason dropReason, problem string) {
	n := 0
	for _, f := range m.FieldList() {
		if _, ok := toFloat(f.Value); ok {
			n++
		}
	}
	if c.debugging() {
		c.drops.detail(fmt.Sprintf("Skipping metric %q (%d measurements): %s", m.Name(), n, problem))
	}
	if c.drops.wantsExample(reason) {
		c.drops.example[reason] = fmt.Sprintf("metric %q: %s", m.Name(), problem)
	}
	c.drops.count[reason] += n
}

func (c *converter) dropPoint(name string, s *series, reason dropReason, problem string) {
	if c.debugging() {
		c.drops.detail(fmt.Sprintf("Skipping %s (%s): %s", name, s, problem))
	}
	if c.drops.wantsExample(reason) {
		c.drops.example[reason] = name + ": " + problem
	}
	c.drops.count[reason]++
}

// maxDropDetails bounds the debug lines one flush keeps for its drops until
// it is reported; the warning per reason carries the full count.
const maxDropDetails = 100

// dropLog condenses one flush's conversion drops into a line per reason, so a
// thousand NaNs give one warning that names an example, not a thousand lines.
// It holds them until the flush is reported (see reportDrops).
type dropLog struct {
	count   [numReasons]int
	example [numReasons]string
	// details: a debug line per drop, kept only when debug is logged.
	details     []string
	moreDetails int
}

func (d *dropLog) reset() {
	clear(d.details)
	*d = dropLog{details: d.details[:0]}
}

func (d *dropLog) wantsExample(r dropReason) bool { return d.count[r] == 0 }

// debugging: building a drop's debug line allocates, so only when it is
// logged.
func (c *converter) debugging() bool {
	return c.log.Level().Includes(telegraf.Debug)
}

func (d *dropLog) detail(line string) {
	if len(d.details) == maxDropDetails {
		d.moreDetails++
		return
	}
	d.details = append(d.details, line)
}

func (d *dropLog) report(log telegraf.Logger, st *stats) {
	for _, line := range d.details {
		log.Debug(line)
	}
	if d.moreDetails > 0 {
		log.Debugf("Skipping %d more measurement(s) or metric(s) (see the warnings)", d.moreDetails)
	}
	for r, n := range d.count {
		if n > 0 {
			st.dropped[r].Incr(int64(n))
			log.Warnf("Dropped %d measurement(s) (%s), e.g. %s", n, dropReason(r), d.example[r])
		}
	}
}
