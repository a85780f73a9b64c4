package librato

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/influxdata/telegraf"
)

const (
	// maxCollisionWarnings bounds the names warned about (8 bytes each);
	// later collisions are still counted.
	maxCollisionWarnings = 1000
	// maxCulprits bounds the metrics compared to explain one collision.
	maxCulprits = 64
	// maxQuietRuns bounds the runs noteRun remembers (8 bytes each).
	maxQuietRuns = 4096
	// maxSuggestions bounds the templates a warning proposes.
	maxSuggestions = 3
	// maxCombined bounds the entries of a combined templates suggestion.
	maxCombined = 8
)

// collisionFinder counts the measurements of a flush that Librato stores as
// one value (same name, same source or tag set, same second), for example
// the disk.used of every mount of a host when the template is "host", and
// warns once per metric name with the tags that would tell them apart.
//
// It runs over every point of every flush, so it works on runs: the
// consecutive points of one metric share series, second and measurement.
// Only runs alike in all three (a group) can collide. A run whose names are
// the same set as the group's first run collapses whole; only groups where
// that does not hold (different fields, a name twice in a run) compare
// point by point. Names and series are compared by the identity hashes the
// converter gave them, which fold case as Librato does: a source WEB1 and
// a source web1 are one series, CPU.idle and cpu.idle one name.
type collisionFinder struct {
	log         telegraf.Logger
	stats       *stats
	template    string
	overrideTag string

	run     runNames    // the names of the run being scanned
	groups  []runGroup  // open addressing by key, kept between flushes
	nGroups int         // used in this flush
	slots   []uint64    // point keys of the groups compared point by point
	live    bool        // slots was cleared for this flush
	points  int         // in this flush
	warned  hashSet     // name hashes
	quiet   hashSet     // name sums of runs all warned about (noteRun)
	pending []collision // first collisions of names, to be explained

	collapsed int // the current Write's, counted once it succeeds
}

// runGroup holds the runs of a flush that share series, second and
// measurement.
type runGroup struct {
	key    uint64
	names  uint64 // sum of the name hashes of its first run
	lo, hi int32  // its first run
	exact  bool   // its points go through slots
	noted  bool   // its names were checked against warned in this flush
}

// collision is the first collision of a name, to be explained.
type collision struct {
	name, key string // for the warning: the name, the source or tag set
	nameHash  uint64 // identities, to find the metrics behind it
	series    uint64
	time      int64
	culprits  []culprit
}

// culprit is one metric behind a collision.
type culprit struct {
	measurement string
	tags        []*telegraf.Tag
}

func newCollisionFinder(template, overrideTag string, st *stats, log telegraf.Logger) collisionFinder {
	return collisionFinder{log: log, stats: st, template: template, overrideTag: overrideTag}
}

// find counts the collisions among pts and warns about names not warned
// about before. metrics are the flush's metrics, which conv converted into
// pts.
func (f *collisionFinder) find(metrics []telegraf.Metric, pts []point, tagged bool, conv *converter) {
	f.collapsed = 0
	if len(pts) < 2 {
		return
	}
	clear(f.groups)
	f.nGroups, f.live, f.points = 0, false, len(pts)
	var prefix string // of the run's names, up to the first '.'
	var prefixHash uint64
	for lo := 0; lo < len(pts); {
		s, t := pts[lo].Series, pts[lo].Time
		// Runs end where the measurement does, so that a group's runs are
		// alike more often. Consecutive runs mostly share the prefix.
		if lo == 0 || !likePrefix(pts[lo].Name, prefix) {
			prefix, _, _ = strings.Cut(pts[lo].Name, ".")
			prefixHash = foldHash(prefix)
		}
		f.run.start(lo)
		var filter runFilter
		filter.mark(pts[lo].NameHash)
		sum, twice := pts[lo].NameHash, false
		hi := lo + 1
		for ; hi < len(pts); hi++ {
			p := &pts[hi]
			if p.Series != s || p.Time != t || !likePrefix(p.Name, prefix) {
				break
			}
			// The filter answers for most names, inlined; a call only
			// when it may be a name seen before in the run.
			if !twice && (hi-lo > maxScannedRun || filter.mark(p.NameHash)) {
				twice = f.run.repeated(pts, hi)
			}
			sum += p.NameHash
		}
		f.addRun(pts, lo, hi, runScan{prefix: prefixHash, sum: sum, twice: twice}, tagged)
		lo = hi
	}
	if len(f.pending) > 0 {
		f.explain(metrics, tagged, conv)
		// Clear, not just truncate: the entries hold the culprits' tags and
		// the series' text, which would stay reachable until a later
		// collision overwrote them (tens of MiB with large tags).
		clear(f.pending)
		f.pending = f.pending[:0]
	}
}

// likePrefix reports whether name up to its first '.' is likely prefix: it
// compares the ends of the prefix and where the '.' is, in constant time.
// Runs only split where prefixes differ to make groups alike more often;
// a run that spans two prefixes is counted right all the same.
func likePrefix(name, prefix string) bool {
	n := len(prefix)
	if len(name) < n || len(name) > n && name[n] != '.' {
		return false
	}
	return n == 0 || name[0] == prefix[0] && name[n-1] == prefix[n-1]
}

// runScan is what the scan of a run of points found out about their names.
type runScan struct {
	prefix, sum uint64 // the hash of the names' prefix, the sum of their hashes
	twice       bool   // a name is there twice
}

// runFilter holds a bit for each name of a run, by its hash: most runs are
// the fields of one metric, a few to a few dozen distinct names, and a clear
// bit tells that a name is new to the run.
type runFilter [4]uint64

// mark sets the bit of h and reports whether it was set.
func (f *runFilter) mark(h uint64) bool {
	w, b := h>>62, uint64(1)<<(h>>56&63)
	set := f[w]&b != 0
	f[w] |= b
	return set
}

// runNames finds a name twice in a run of points, where the runFilter
// cannot tell: a scan of the run, and past maxScannedRun names a table of
// the run's hashes in open addressing, each slot stamped with the run that
// filled it, so that starting a run clears nothing.
type runNames struct {
	lo     int  // the run's first point
	tabled bool // the run is long: its names are in slots

	slots []runSlot
	stamp uint32
	n     int // names in the slots for the current stamp
}

type runSlot struct {
	hash  uint64
	stamp uint32 // a slot of another stamp is free
}

// maxScannedRun bounds the points scanned to check one name.
const maxScannedRun = 32

// start begins a run at point lo.
func (r *runNames) start(lo int) {
	r.lo, r.tabled = lo, false
}

// repeated reports whether the name of pts[i] is among those of
// pts[r.lo:i], once the run's filter had its bit set. Past maxScannedRun it
// is called for each point of the run in turn, until it reports one.
func (r *runNames) repeated(pts []point, i int) bool {
	h := pts[i].NameHash
	if i-r.lo > maxScannedRun {
		if !r.tabled {
			r.table(pts[r.lo:i])
		}
		return r.add(h)
	}
	for j := r.lo; j < i; j++ {
		if pts[j].NameHash == h {
			return true
		}
	}
	return false
}

// table puts the names of a long run so far into the slots.
func (r *runNames) table(run []point) {
	r.tabled = true
	r.stamp++
	r.n = 0
	if r.stamp == 0 { // wrapped: stamps of 2^32 runs ago would look current
		clear(r.slots)
		r.stamp = 1
	}
	for i := range run {
		r.add(run[i].NameHash)
	}
}

// add adds a name hash to the slots and reports whether it was there.
func (r *runNames) add(h uint64) bool {
	if 2*(r.n+1) > len(r.slots) {
		r.grow()
	}
	mask := uint64(len(r.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &r.slots[i]
		switch {
		case sl.stamp != r.stamp:
			*sl = runSlot{hash: h, stamp: r.stamp}
			r.n++
			return false
		case sl.hash == h:
			return true
		}
	}
}

func (r *runNames) grow() {
	old := r.slots
	r.slots, r.n = make([]runSlot, max(2*len(old), 64)), 0
	for _, sl := range old {
		if sl.stamp == r.stamp {
			r.add(sl.hash)
		}
	}
}

// addRun counts the collisions of the run pts[lo:hi].
func (f *collisionFinder) addRun(pts []point, lo, hi int, r runScan, tagged bool) {
	key := nonZero(pts[lo].Series.Identity ^ uint64(pts[lo].Time)*0x9e3779b97f4a7c15 ^ r.prefix*0xc2b2ae3d27d4eb4f)
	g := f.group(key)
	switch {
	case g.key == 0:
		*g = runGroup{key: key, names: r.sum, lo: int32(lo), hi: int32(hi), exact: r.twice}
		f.nGroups++
		if r.twice {
			f.compare(pts[lo:hi], tagged)
		}
	case !g.exact && !r.twice && g.names == r.sum && g.hi-g.lo == int32(hi-lo):
		f.collapsed += hi - lo
		if !g.noted {
			g.noted = true
			f.noteRun(pts[lo:hi], r.sum, tagged)
		}
	default:
		if !g.exact {
			g.exact = true
			f.compare(pts[g.lo:g.hi], tagged)
		}
		f.compare(pts[lo:hi], tagged)
	}
}

// group returns the group of key, or the empty slot for it.
func (f *collisionFinder) group(key uint64) *runGroup {
	if 2*(f.nGroups+1) > len(f.groups) {
		f.growGroups()
	}
	mask := uint64(len(f.groups) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		if g := &f.groups[i]; g.key == key || g.key == 0 {
			return g
		}
	}
}

func (f *collisionFinder) growGroups() {
	old := f.groups
	f.groups = make([]runGroup, max(2*len(old), 64))
	mask := uint64(len(f.groups) - 1)
	for _, g := range old {
		if g.key == 0 {
			continue
		}
		i := g.key & mask
		for f.groups[i].key != 0 {
			i = (i + 1) & mask
		}
		f.groups[i] = g
	}
}

// compare adds the run's points to slots one by one, counting those of a
// name and second already there.
func (f *collisionFinder) compare(run []point, tagged bool) {
	if !f.live {
		f.slots = table(f.slots, f.points)
		f.live = true
	}
	mask := uint64(len(f.slots) - 1)
	rh := run[0].Series.Identity ^ uint64(run[0].Time)*0x9e3779b97f4a7c15
	for i := range run {
		k := pointKey(rh, run[i].NameHash)
		j := k & mask
		for f.slots[j] != 0 && f.slots[j]&^1 != k {
			j = (j + 1) & mask
		}
		switch s := &f.slots[j]; {
		case *s == 0:
			*s = k
		case *s&1 == 0:
			*s |= 1
			f.collapsed++
			f.note(&run[i], tagged)
		default:
			f.collapsed++
		}
	}
}

// table returns slots cleared and big enough for n points at most two
// thirds full, reusing the last flush's when large enough.
func table(slots []uint64, n int) []uint64 {
	size := 16
	for size < n+n/2 {
		size *= 2
	}
	if cap(slots) < size {
		return make([]uint64, size)
	}
	slots = slots[:size]
	clear(slots)
	return slots
}

// noteRun notes the names of a run that collapses, once per group and
// flush. Afterwards every name of the run is warned about, or never will be
// (past maxCollisionWarnings), so the run is remembered by the sum of its
// names' hashes: the next flushes skip it with one lookup, not one per name.
func (f *collisionFinder) noteRun(run []point, sum uint64, tagged bool) {
	k := nonZero(sum)
	if f.quiet.has(k) {
		return
	}
	for i := range run {
		f.note(&run[i], tagged)
	}
	if f.quiet.n < maxQuietRuns {
		f.quiet.add(k)
	}
}

// note queues the first collision of a name not warned about yet. Past
// maxCollisionWarnings names it queues nothing more.
func (f *collisionFinder) note(p *point, tagged bool) {
	h := nonZero(p.NameHash)
	if f.warned.n >= maxCollisionWarnings || f.warned.has(h) {
		return
	}
	f.warned.add(h)
	f.pending = append(f.pending, collision{name: p.Name, key: seriesKeyOf(p.Series, tagged),
		nameHash: p.NameHash, series: p.Series.Identity, time: p.Time})
}

// seriesKeyOf is what Librato tells series apart by, besides the name, as
// sent: the legacy source or the tagged API's tag set.
func seriesKeyOf(s *series, tagged bool) string {
	if tagged {
		return s.Tags
	}
	return s.Source
}

// settle adds the current Write's collisions to the self-metric once the
// flush was delivered, so that Telegraf's retries do not count them again.
func (f *collisionFinder) settle(delivered bool) {
	if delivered && f.collapsed > 0 {
		f.stats.collapsed.Incr(int64(f.collapsed))
	}
	// Like the converter's buffers: tables for more than retainedPoints
	// are let go, so one huge flush does not stay on the heap for good.
	if len(f.slots) > 2*retainedPoints {
		f.slots = nil
	}
	if len(f.groups) > 2*retainedPoints {
		f.groups, f.nGroups = nil, 0
	}
	if len(f.run.slots) > 2*retainedPoints {
		f.run.slots = nil
	}
}

// explain finds the metrics behind each queued collision and logs which
// tags tell them apart. It runs once per metric name at most, so it may be
// slow: it asks the converter again for every metric's series and names.
func (f *collisionFinder) explain(metrics []telegraf.Metric, tagged bool, conv *converter) {
	type place struct {
		name, series uint64
		time         int64
	}
	index := make(map[place]*collision, len(f.pending))
	times := make(map[int64]bool)
	for i := range f.pending {
		g := &f.pending[i]
		index[place{g.nameHash, g.series, g.time}] = g
		times[g.time] = true
	}
	for _, m := range metrics {
		t := m.Time().Unix()
		if !times[t] {
			continue
		}
		s := conv.seriesFor(m)
		if s.Problem != "" {
			continue
		}
		names := conv.names.fields(m.Name())
		for _, field := range m.FieldList() {
			if _, ok := toFloat(field.Value); !ok {
				continue
			}
			var name libratoName
			name, names = conv.nameFor(names, m.Name(), field.Key)
			g := index[place{name.hash, s.Identity, t}]
			if g != nil && len(g.culprits) < maxCulprits {
				g.culprits = append(g.culprits, culprit{m.Name(), m.TagList()})
			}
		}
	}
	var tmpls *sourceTemplates
	if conv != nil { // tests count collisions without a converter
		tmpls = conv.templates
	}
	f.warn(tagged, tmpls)
}

// warn logs the queued collisions, one line for the names that collide the
// same way (the fields of one input, say).
func (f *collisionFinder) warn(tagged bool, tmpls *sourceTemplates) {
	type line struct {
		where, advice string
		names         []string
	}
	var lines []*line
	byText := make(map[string]*line)
	advices := make([]advice, len(f.pending))
	for i := range f.pending {
		advices[i] = f.advice(&f.pending[i], tagged, tmpls)
	}
	combined := combineTemplates(advices)
	for i := range f.pending {
		g := &f.pending[i]
		where := fmt.Sprintf("at %d with source %q", g.time, g.key)
		if tagged {
			where = fmt.Sprintf("at %d with tags %s", g.time, g.key)
		}
		switch n := len(g.culprits); {
		case n == maxCulprits:
			where += fmt.Sprintf(" from %d metrics or more", n)
		case n > 1:
			where += fmt.Sprintf(" from %d metrics", n)
		}
		advice := advices[i].text(combined)
		l := byText[where+advice]
		if l == nil {
			l = &line{where: where, advice: advice}
			byText[where+advice] = l
			lines = append(lines, l)
		}
		l.names = append(l.names, g.name)
	}
	what := "source"
	if tagged {
		what = "tag set"
	}
	for _, l := range lines {
		f.log.Warnf("Librato keeps one value per metric name, %s and second: the measurements of %s %s are merged into one each, "+
			"the others are lost. %s (warned once per metric name; measurements_collapsed counts them)",
			what, quoteNames(l.names), l.where, l.advice)
	}
}

// quoteNames lists the first few names in order and how many more there are.
func quoteNames(names []string) string {
	const shown = 4
	slices.Sort(names)
	q := make([]string, 0, shown)
	for _, n := range names[:min(len(names), shown)] {
		q = append(q, fmt.Sprintf("%q", n))
	}
	if len(names) > shown {
		return fmt.Sprintf("%s and %d more names", strings.Join(q, ", "), len(names)-shown)
	}
	return strings.Join(q, ", ")
}

// advice is what would tell the colliding metrics of one collision apart:
// a sentence, or the tags whose place in the source would do it.
type advice struct {
	sentence string
	// With templates: the collision's differing tags, its measurement and
	// the templates that would add a tag to its source.
	differ      string
	measurement string
	templates   []string
}

// text is the advice as the warning says it. combined, when not empty, is
// one templates setting for every measurement of the flush's warnings: a
// template per warning would each change every other metric's source, and
// they cannot all be set.
func (a advice) text(combined string) string {
	switch {
	case len(a.templates) == 0:
		return a.sentence
	case combined != "":
		return fmt.Sprintf(`%s: add one to the source; one setting does it for every measurement warned about now, `+
			`leaving other metrics' sources as they are (%s), or use api = "tagged".`, a.differ, combined)
	}
	// A templates entry, not template: template would change every other
	// metric's source too.
	quoted := make([]string, len(a.templates))
	for i, t := range a.templates {
		quoted[i] = fmt.Sprintf("templates = [%q]", templatesFilter(a.measurement)+" "+t)
	}
	return fmt.Sprintf(`%s: add one to the source, leaving other metrics' sources as they are (%s), or use api = "tagged".`,
		a.differ, strings.Join(quoted, " or "))
}

// combineTemplates returns a templates setting with the first suggested
// template of each measurement, when more than one measurement needs one;
// otherwise "".
func combineTemplates(advices []advice) string {
	entries := make([]string, 0, len(advices))
	seen := make([]string, 0, len(advices))
	for _, a := range advices {
		if len(a.templates) == 0 || slices.Contains(seen, a.measurement) {
			continue
		}
		seen = append(seen, a.measurement)
		entries = append(entries, fmt.Sprintf("%q", templatesFilter(a.measurement)+" "+a.templates[0]))
	}
	if len(entries) < 2 {
		return ""
	}
	slices.Sort(entries)
	if len(entries) > maxCombined {
		return fmt.Sprintf("templates = [%s, ...] with entries like these for %d more measurements",
			strings.Join(entries[:maxCombined], ", "), len(entries)-maxCombined)
	}
	return "templates = [" + strings.Join(entries, ", ") + "]"
}

// advice names what would tell the colliding metrics apart. tmpls gives the
// template each measurement's source came from.
func (f *collisionFinder) advice(g *collision, tagged bool, tmpls *sourceTemplates) advice {
	if len(g.culprits) < 2 {
		return advice{sentence: `Set a template that tells them apart, or use api = "tagged".`}
	}
	spreads := tagSpreads(g.culprits, false)
	if len(spreads) == 0 {
		for _, c := range g.culprits[1:] {
			if c.measurement != g.culprits[0].measurement {
				return advice{sentence: fmt.Sprintf(
					"They come from measurements %q and %q, whose names Librato takes for one (once sanitised, case aside): rename one.",
					g.culprits[0].measurement, c.measurement)}
			}
		}
		return advice{sentence: "Their tags are identical: the same metric was sent more than once for one second " +
			"(a duplicated input, an interval under 1s, or a timestamp that does not change)."}
	}
	keys := make([]string, len(spreads))
	for i, s := range spreads {
		keys[i] = fmt.Sprintf("%q", s.key)
	}
	if len(tagSpreads(g.culprits, true)) == 0 {
		// Neither a template nor the tagged API helps: Librato compares
		// sources and names regardless of case and lower-cases tags.
		return advice{sentence: fmt.Sprintf("They differ only in the case of tag(s) %s, which Librato ignores: make them differ in more than case.",
			strings.Join(keys, ", "))}
	}
	differ := "They differ in tag(s) " + strings.Join(keys, ", ")
	switch {
	case tagged:
		return advice{sentence: differ + `, which are not sent (tags_include, tags_exclude, the limit of 50 tags) or become equal once sanitised.`}
	case f.overrideTag != "" && g.overrideUsed(f.overrideTag):
		return advice{sentence: fmt.Sprintf(`%s: give them distinct %q values, or use api = "tagged".`, differ, f.overrideTag)}
	}
	measurement := g.culprits[0].measurement
	template := f.template
	if tmpls != nil {
		template = tmpls.forMeasurement(measurement)
	}
	a := advice{differ: differ, measurement: measurement}
	for _, s := range spreads {
		if s.distinct < spreads[0].distinct || len(a.templates) == maxSuggestions {
			break
		}
		if !templateHas(template, s.key) {
			a.templates = append(a.templates, template+"."+s.key)
		}
	}
	if len(a.templates) == 0 {
		a.sentence = differ + `, which the template uses but sanitising makes equal: use api = "tagged".`
		return a
	}
	if !canFilter(measurement) {
		// No templates entry can name it: template it is, though it
		// changes every other metric's source too.
		quoted := make([]string, len(a.templates))
		for i, t := range a.templates {
			quoted[i] = fmt.Sprintf("template = %q", t)
		}
		a.sentence = fmt.Sprintf(`%s: add one to the source (%s; no templates entry can name measurement %q, which holds white space), `+
			`or use api = "tagged".`, differ, strings.Join(quoted, " or "), measurement)
		a.templates = nil
	}
	return a
}

// canFilter reports whether a templates entry can name measurement: an
// entry is split at white space.
func canFilter(measurement string) bool {
	return measurement != "" && !strings.ContainsFunc(measurement, unicode.IsSpace)
}

// templatesFilter returns the filter of a templates entry that matches
// measurement and nothing else (if canFilter). A name with none of
// filter.Compile's wildcards is matched as it is; one with any is a glob,
// whose special characters are escaped (a bare "app[1]" would match "app1",
// and "req*" "requests").
func templatesFilter(measurement string) string {
	if !strings.ContainsAny(measurement, "*?[") {
		return measurement
	}
	var b strings.Builder
	for _, r := range measurement {
		if strings.ContainsRune(`*?\[]{}`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (g *collision) overrideUsed(tag string) bool {
	for _, c := range g.culprits {
		for _, t := range c.tags {
			if t.Key == tag {
				return true
			}
		}
	}
	return false
}

// templateHas reports whether a graphite template already places the tag.
func templateHas(template, key string) bool {
	for part := range strings.SplitSeq(template, ".") {
		if part == key || part == "tags" {
			return true
		}
	}
	return false
}

type tagSpread struct {
	key      string
	distinct int // values among the metrics, absence counting as one
}

// tagSpreads returns the tags whose values differ among the tag sets, the
// ones that tell most of them apart first; with fold, values that differ
// only in case count as equal.
func tagSpreads(sets []culprit, fold bool) []tagSpread {
	var keys []string
	for _, c := range sets {
		for _, t := range c.tags {
			if !slices.Contains(keys, t.Key) {
				keys = append(keys, t.Key)
			}
		}
	}
	type value struct {
		set bool
		v   string
	}
	var out []tagSpread
	values := make(map[value]bool, len(sets))
	for _, k := range keys {
		clear(values)
		for _, c := range sets {
			var v value
			for _, t := range c.tags {
				if t.Key == k {
					v = value{true, t.Value}
					if fold {
						v.v = strings.ToLower(v.v)
					}
					break
				}
			}
			values[v] = true
		}
		if len(values) > 1 {
			out = append(out, tagSpread{key: k, distinct: len(values)})
		}
	}
	slices.SortFunc(out, func(a, b tagSpread) int {
		return cmp.Or(cmp.Compare(b.distinct, a.distinct), cmp.Compare(a.key, b.key))
	})
	return out
}
