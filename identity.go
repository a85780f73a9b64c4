package librato

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// Identity of what Librato keys measurements on. The converter hashes every
// name and series once, when it makes them (and caches them), as Librato
// compares them; the screens (series guard, collision finder) compare only
// those hashes and never hash a string per measurement.

// identitySeed seeds every identity hash of the process: one seed, so that
// the hashes the converters compute mean the same in every screen; random,
// so that no set of names collides in every process.
var identitySeed = maphash.MakeSeed()

// foldHash hashes s with ASCII letters lower-cased. Librato's names, sources
// and tags are case-insensitive, and sanitising leaves nothing but ASCII in
// them, so two strings Librato takes for one hash alike. It does not
// allocate: strings with capitals are lowered in a buffer on the stack.
func foldHash(s string) uint64 {
	i := 0
	for i < len(s) && !isUpperASCII(s[i]) {
		i++
	}
	if i == len(s) {
		return maphash.String(identitySeed, s) // the common case: nothing to fold
	}
	var h maphash.Hash
	h.SetSeed(identitySeed)
	writeFolded(&h, s)
	return h.Sum64()
}

// writeFolded writes s to h lower-cased. A Hash's sum depends only on the
// bytes written, not on how they were split, so this equals
// maphash.String(seed, strings.ToLower(s)) for ASCII s.
func writeFolded(h *maphash.Hash, s string) {
	var buf [128]byte
	for len(s) > 0 {
		n := copy(buf[:], s)
		for j, c := range buf[:n] {
			if isUpperASCII(c) {
				buf[j] = c + 'a' - 'A'
			}
		}
		_, _ = h.Write(buf[:n]) // never fails
		s = s[n:]
	}
}

func isUpperASCII(c byte) bool { return 'A' <= c && c <= 'Z' }

// tagsIdentity hashes a tag set as Librato compares it: keys and values
// lower-cased (Librato lower-cases both), in the order of the lower-cased
// keys, so that {"Host":…,"env":…} and {"env":…,"host":…} are one tag set.
// Each key and value ends with a 0 byte, which neither can contain.
func tagsIdentity(pairs [][2]string) uint64 {
	sorted := func(a, b [2]string) int { return compareFolded(a[0], b[0]) }
	if !slices.IsSortedFunc(pairs, sorted) {
		// Only tag keys with capitals can be out of order here: the
		// converter adds them in byte order. Rare, so a copy is fine.
		pairs = slices.SortedStableFunc(slices.Values(pairs), sorted)
	}
	var h maphash.Hash
	h.SetSeed(identitySeed)
	for _, p := range pairs {
		writeFolded(&h, p[0])
		_ = h.WriteByte(0)
		writeFolded(&h, p[1])
		_ = h.WriteByte(0)
	}
	return h.Sum64()
}

// compareFolded compares ASCII strings as if lower-cased.
func compareFolded(a, b string) int {
	for i := range min(len(a), len(b)) {
		if ca, cb := lowerASCII(a[i]), lowerASCII(b[i]); ca != cb {
			return int(ca) - int(cb)
		}
	}
	return len(a) - len(b)
}

func lowerASCII(c byte) byte {
	if isUpperASCII(c) {
		return c + 'a' - 'A'
	}
	return c
}

// pointKey combines a series hash and a name hash into a key whose bit 0 is
// clear, free for a flag, and which is never 0 (an empty slot).
func pointKey(series, name uint64) uint64 {
	return (series^bits.RotateLeft64(name, 32))&^1 | 2
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
