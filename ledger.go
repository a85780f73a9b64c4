package librato

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
)

// ledger remembers which measurements of a failed flush were settled, so
// the retry of the same metrics skips them. It holds at most one flush, and
// of it only the settled measurements: 8 bytes each, a sorted slice of
// their keys.
type ledger struct {
	// pendingTagged: the API of the failed flush whose settled
	// measurements the ledger holds. Its retry goes there too (the keys
	// would match in the other API, but a retry is the same flush, and its
	// answers the same evidence).
	pendingTagged bool

	seed maphash.Seed
	done []uint64
}

func (l *ledger) reset() { l.done = nil }

// pending reports whether a failed flush's settled measurements are waiting
// for Telegraf's retry.
func (l *ledger) pending() bool { return len(l.done) > 0 }

// skipSettled removes the points the ledger knows from pts (in place) and
// returns the keys it skipped, which stay settled.
func (l *ledger) skipSettled(pts []point, st *stats) ([]point, []uint64) {
	if len(l.done) == 0 {
		return pts, nil
	}
	var carried []uint64
	kept := pts[:0]
	for _, p := range pts {
		key := l.key(&p)
		if _, ok := slices.BinarySearch(l.done, key); ok {
			carried = append(carried, key)
			continue
		}
		kept = append(kept, p)
	}
	st.deduped.Incr(int64(len(carried)))
	return kept, carried
}

func (l *ledger) record(pts []point, settled []bool, carried []uint64) {
	n := len(carried)
	for _, ok := range settled {
		if ok {
			n++
		}
	}
	done := make([]uint64, 0, n) // exactly the settled ones, not the flush
	done = append(done, carried...)
	for i := range pts {
		if settled[i] {
			done = append(done, l.key(&pts[i]))
		}
	}
	slices.Sort(done)
	l.done = done
}

// key identifies a measurement the same way whichever API it was converted
// for: by its metric's raw tag set (Series.TagSet), its Librato name (the
// same in both APIs), time and value or summary. With api = "auto" a flush
// that switches to the legacy API in the middle then skips what the tagged
// API already stored, and the reverse.
func (l *ledger) key(p *point) uint64 {
	if l.seed == (maphash.Seed{}) {
		l.seed = maphash.MakeSeed()
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(p.Name)
	h.WriteByte(0)
	var sm summary
	if p.Summary != nil {
		sm = *p.Summary
	}
	for _, v := range []uint64{p.Series.TagSet, uint64(p.Time), math.Float64bits(p.Value), uint64(sm.Count),
		math.Float64bits(sm.Sum), math.Float64bits(sm.Min), math.Float64bits(sm.Max), math.Float64bits(sm.Std)} {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	return h.Sum64()
}
