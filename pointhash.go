package librato

import (
	"hash/maphash"
	"math/bits"
	"strings"
	"unsafe"
)

// Hashing of what Librato keys measurements on, shared by the series guard
// and the collision finder, which both look at every point of every flush.

// seriesKeyOf is what Librato tells series apart by, besides the name: the
// legacy source or the tagged API's tag set.
func seriesKeyOf(s *series, tagged bool) string {
	if tagged {
		return s.Tags
	}
	return s.Source
}

// seriesMemoSize is the number of series whose hashes are kept: a few
// times the series of a large flush.
const seriesMemoSize = 2048

// seriesMemo hashes series keys, remembering the hashes of the series it
// saw last by their address: the converter keeps one series per tag set,
// and the memo's reference keeps its address from being reused.
type seriesMemo struct {
	seed maphash.Seed
	memo [seriesMemoSize]struct {
		s      *series
		tagged bool
		hash   uint64
	}
}

func (m *seriesMemo) hash(s *series, tagged bool) uint64 {
	// The address only picks a slot; the entry keeps s itself, compared by
	// pointer, so a reused address can never match a stale entry.
	e := &m.memo[uint64(uintptr(unsafe.Pointer(s)))*0x9e3779b97f4a7c15>>(64-11)] //nolint:gosec // audited: see above; seriesMemoSize
	if e.s != s || e.tagged != tagged {
		e.s, e.tagged, e.hash = s, tagged, maphash.String(m.seed, seriesKeyOf(s, tagged))
	}
	return e.hash
}

// pointKey combines a series hash and a name hash into a key whose bit 0 is
// clear, free for a flag, and which is never 0 (an empty slot).
func pointKey(series, name uint64) uint64 {
	return (series^bits.RotateLeft64(name, 32))&^1 | 2
}

const (
	// nameMemoSize is the number of name strings whose hashes are kept: a
	// flush has a few hundred distinct names.
	nameMemoSize = 1024
	// maxCanonNames bounds the distinct names remembered.
	maxCanonNames = 1 << 14
)

// name is what the screens need of a metric name, once per distinct name.
type name struct {
	hash   uint64 // of the name
	prefix uint64 // of the name up to its first '.': one per measurement
	run    int    // the last run of points it was seen in
	warned bool   // warned about as a collision
}

// nameMemo finds the name of a string without hashing it. The converter
// gives each measurement and field one name string, reused by every metric
// and flush, so the memo finds it by the address and length of its bytes:
// strings never change, and the memo's reference keeps the bytes from being
// reused for another string. Strings with equal text share one name, so
// everything about names goes by their text.
type nameMemo struct {
	seed  uint64
	memo  [nameMemoSize]memoEntry
	canon map[uint64]*name // by hash
	empty name
}

type memoEntry struct {
	data *byte
	size int // len+1: 0 is an unused entry
	name *name
}

func newNameMemo(seed uint64) *nameMemo {
	m := &nameMemo{seed: seed, canon: make(map[uint64]*name)}
	m.empty = name{hash: nameHash(seed, ""), prefix: nameHash(seed, ""), run: -1}
	return m
}

// get returns the name of s. Its common case is inlined in the loops over
// points.
func (m *nameMemo) get(s string) *name {
	if n := m.cached(s); n != nil {
		return n
	}
	return m.miss(s)
}

// cached returns the name of s if the memo has it, else nil.
func (m *nameMemo) cached(s string) *name {
	// Audited: the data pointer is only read and compared; the entry holds
	// it, so the bytes stay alive and cannot turn into another string.
	d := unsafe.StringData(s)                                //nolint:gosec // audited above
	e := &m.memo[uintptr(unsafe.Pointer(d))>>3%nameMemoSize] //nolint:gosec // audited above
	if e.data != d || e.size != len(s)+1 {
		return nil
	}
	return e.name
}

func (m *nameMemo) miss(s string) *name {
	if len(s) == 0 {
		return &m.empty // the address of empty strings is unspecified
	}
	d := unsafe.StringData(s)                                //nolint:gosec // audited in cached
	e := &m.memo[uintptr(unsafe.Pointer(d))>>3%nameMemoSize] //nolint:gosec // audited in cached
	*e = memoEntry{data: d, size: len(s) + 1, name: m.lookup(s)}
	return e.name
}

func (m *nameMemo) lookup(s string) *name {
	h := nameHash(m.seed, s)
	if n := m.canon[h]; n != nil {
		return n
	}
	if len(m.canon) >= maxCanonNames {
		// Start over, memo included, which points at the names. Names
		// handed out before stay valid; a run of points that straddles
		// this may miss a name it has twice.
		clear(m.canon)
		m.memo = [nameMemoSize]memoEntry{}
	}
	prefix, _, _ := strings.Cut(s, ".")
	n := &name{hash: h, prefix: nameHash(m.seed, prefix), run: -1}
	m.canon[h] = n
	return n
}

// nameHash hashes a name eight bytes at a time with a multiply per word;
// the high bits are the well mixed ones. It is no defence against chosen
// names, which could only make a series look seen or a collision look real.
func nameHash(seed uint64, s string) uint64 {
	const m = 0x9e3779b97f4a7c15
	n := len(s)
	h := (seed ^ uint64(n)) * m
	switch {
	case n >= 8:
		for j := 0; j < n-8; j += 8 {
			h = bits.RotateLeft64((h^load64(s, j))*m, 29)
		}
		h ^= load64(s, n-8)
	case n >= 4:
		h ^= load32(s, 0)<<32 | load32(s, n-4)
	case n > 0:
		h ^= uint64(s[0])<<16 | uint64(s[n/2])<<8 | uint64(s[n-1])
	}
	h *= m
	return h ^ h>>32
}

// load64 reads s[i:i+8] little-endian; the compiler makes it one load.
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func load32(s string, i int) uint64 {
	_ = s[i+3]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24
}

// nonZero keeps 0 free to mark empty slots of the hash tables.
func nonZero(k uint64) uint64 {
	if k == 0 {
		return 1
	}
	return k
}

// hashSet is a set of non-zero 64-bit hashes: open addressing, linear
// probing, 8 bytes a slot, growing up to maxSlots.
type hashSet struct {
	slots []uint64
	n     int
}

func (s *hashSet) has(k uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
	}
}

// full reports whether the set is at three quarters of maxSlots.
func (s *hashSet) full(maxSlots int) bool { return s.n >= maxSlots/4*3 }

// add inserts k; the caller checks full first.
func (s *hashSet) add(k uint64) {
	if s.n+1 > len(s.slots)/4*3 {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case k:
			return
		case 0:
			s.slots[i] = k
			s.n++
			return
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots, s.n = make([]uint64, max(2*len(old), 64)), 0
	for _, k := range old {
		if k != 0 {
			s.add(k)
		}
	}
}

func (s *hashSet) reset() {
	clear(s.slots)
	s.n = 0
}
