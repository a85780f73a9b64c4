package librato

import (
	"encoding/binary"
	"hash/maphash"
	"math"
)

// ledger remembers which measurements of a failed flush were settled, so
// the retry of the same metrics skips them. It holds at most one flush.
type ledger struct {
	// pendingTagged: the API of the failed flush whose settled
	// measurements the ledger holds.
	pendingTagged bool

	seed maphash.Seed
	done map[uint64]struct{}
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
		if _, ok := l.done[key]; ok {
			carried = append(carried, key)
			continue
		}
		kept = append(kept, p)
	}
	st.deduped.Incr(int64(len(carried)))
	return kept, carried
}

func (l *ledger) record(pts []point, settled []bool, carried []uint64) {
	done := make(map[uint64]struct{}, len(carried)+len(pts))
	for _, k := range carried {
		done[k] = struct{}{}
	}
	for i := range pts {
		if settled[i] {
			done[l.key(&pts[i])] = struct{}{}
		}
	}
	l.done = done
}

// key identifies a measurement by everything that is sent of it.
func (l *ledger) key(p *point) uint64 {
	if l.seed == (maphash.Seed{}) {
		l.seed = maphash.MakeSeed()
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(p.name)
	h.WriteByte(0)
	h.WriteString(p.series.source)
	h.WriteByte(0)
	h.WriteString(p.series.tags)
	for _, v := range []uint64{uint64(p.time), math.Float64bits(p.value), uint64(p.count),
		math.Float64bits(p.sum), math.Float64bits(p.min), math.Float64bits(p.max), math.Float64bits(p.std)} {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	return h.Sum64()
}
