package librato

// The converter remembers the Librato name of every measurement field and
// the source or tags of every tag set, so that a steady workload converts
// without allocating. Unique tag values, names that never repeat or a
// measurement whose field names keep changing must not make it hold more
// than a fixed budget: each cache counts its entries and their estimated
// heap, and when the next entry would not fit it starts over empty (the old
// maps become garbage; clearing them would keep their buckets). An entry too
// large to be worth keeping is never remembered. Either way what is not
// cached is still converted, just computed again the next time.
const (
	// cacheBudgetBytes and cacheMaxEntries bound each of the two caches.
	cacheBudgetBytes = 16 << 20
	cacheMaxEntries  = 100_000
	// maxCachedEntryBytes is the largest entry kept: bigger ones are unique
	// values (a request ID in a tag), not series worth remembering.
	maxCachedEntryBytes = 16 << 10

	// Estimated heap per entry beyond the lengths of its strings: map
	// slots, the series struct, size classes rounding allocations up. About
	// 1.5 times what TestCacheEntryCosts measures (it fails below 1), so the
	// budgets are upper bounds.
	nameEntryCost        = 128 // one field's name in a measurement's map
	measurementEntryCost = 448 // a measurement's entry and its own map
	seriesEntryCost      = 192 // one tag set's key and series
)

// budget counts a cache's entries and estimated bytes.
type budget struct {
	entries, bytes int
}

func (b *budget) fits(cost int) bool {
	return b.entries < cacheMaxEntries && b.bytes+cost <= cacheBudgetBytes
}

func (b *budget) add(cost int) {
	b.entries++
	b.bytes += cost
}

// libratoName is a measurement's name in Librato and its identity hash
// (foldHash): Librato's names are case-insensitive, and the screens compare
// names by this hash, computed once per cached name.
type libratoName struct {
	text string
	hash uint64
}

// nameCache maps measurement → field → Librato name. A measurement gets an
// entry only once one of its fields needs a name, so measurements of string
// fields only cost nothing.
type nameCache struct {
	byMeasurement map[string]map[string]libratoName
	used          budget
}

// fields returns the names cached for a measurement, nil if none.
func (nc *nameCache) fields(measurement string) map[string]libratoName {
	return nc.byMeasurement[measurement]
}

// remember caches name for measurement's field, where names is what fields
// returned for measurement (or what remember last returned for it), and
// returns the measurement's map from now on.
func (nc *nameCache) remember(names map[string]libratoName, measurement, field string, name libratoName) map[string]libratoName {
	cost := nameEntryCost + len(field) + len(name.text)
	if names == nil {
		cost += measurementEntryCost + len(measurement)
	}
	if cost > maxCachedEntryBytes {
		return names
	}
	if !nc.used.fits(cost) {
		nc.startOver()
		if names != nil {
			names = nil
			cost += measurementEntryCost + len(measurement)
		}
	}
	// The keys are the metric's own strings, not copies: inputs name their
	// measurements and fields with constants, and a lookup with the very
	// string the map holds skips comparing bytes. Their lengths are counted.
	if names == nil {
		names = make(map[string]libratoName)
		nc.byMeasurement[measurement] = names
		nc.used.add(0) // the measurement counts as an entry too
	}
	names[field] = name
	nc.used.add(cost)
	return names
}

func newNameCache() *nameCache {
	nc := &nameCache{}
	nc.startOver()
	return nc
}

func (nc *nameCache) startOver() {
	nc.byMeasurement = make(map[string]map[string]libratoName)
	nc.used = budget{}
}

// seriesCache maps a tag set (keys and values, each followed by a 0 byte)
// to its series.
type seriesCache struct {
	byKey map[string]*series
	used  budget
}

func (sc *seriesCache) get(key []byte) (*series, bool) {
	s, ok := sc.byKey[string(key)]
	return s, ok
}

func (sc *seriesCache) remember(key []byte, s *series) {
	cost := seriesEntryCost + len(key) + len(s.Source) + len(s.Tags) + len(s.Problem)
	if cost > maxCachedEntryBytes {
		return
	}
	if !sc.used.fits(cost) {
		sc.startOver()
	}
	sc.byKey[string(key)] = s // string(key) copies the scratch buffer
	sc.used.add(cost)
}

func (sc *seriesCache) startOver() {
	sc.byKey = make(map[string]*series)
	sc.used = budget{}
}
