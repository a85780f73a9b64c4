package librato

import (
	"strings"
	"time"

	"github.com/influxdata/telegraf"
)

const (
	// seriesWindowSlots divides max_new_series_period: admissions leave the
	// window one slot at a time, so in constant memory the guard is at most
	// 1/60 of a period stricter than an exact sliding window.
	seriesWindowSlots = 60

	// maxSeenSlots sizes each generation of the seen-series set: 2^19
	// 8-byte hashes (4 MiB), full at three quarters (393,216 series). Two
	// generations: at most 786,432 series in 8 MiB.
	maxSeenSlots = 1 << 19

	guardExamples = 3
)

// seriesWindow counts the new series admitted within the last period, in
// seriesWindowSlots+1 slots. It is a pure policy: the caller passes the time.
//
// An admission in slot c stays counted until slot c+61 begins, at least one
// full period later, so no period-long interval ever holds more than limit
// admissions.
type seriesWindow struct {
	limit  int
	slot   time.Duration
	origin time.Time
	newest int64
	counts [seriesWindowSlots + 1]int
	total  int
}

func newSeriesWindow(limit int, period time.Duration) seriesWindow {
	return seriesWindow{limit: limit, slot: max(period/seriesWindowSlots, 1)}
}

// allowance moves the window to now and returns how many new series it
// still admits. A clock that goes back expires nothing.
func (w *seriesWindow) allowance(now time.Time) int {
	if w.origin.IsZero() {
		w.origin = now
	}
	if cur := int64(now.Sub(w.origin) / w.slot); cur > w.newest {
		for i := range min(cur-w.newest, int64(len(w.counts))) {
			c := &w.counts[(w.newest+1+i)%int64(len(w.counts))]
			w.total -= *c
			*c = 0
		}
		w.newest = cur
	}
	return max(w.limit-w.total, 0)
}

// take counts n admissions in the newest slot.
func (w *seriesWindow) take(n int) {
	w.counts[w.newest%int64(len(w.counts))] += n
	w.total += n
}

// seenSeries is the bounded memory of series already admitted: two
// generations of hashes. A series found in the old one moves to the current
// one; when the current one is full, the old one is forgotten and the
// current one becomes old. So a series is forgotten only once maxSlots·3/4
// other series were seen after it last was, and then it counts as new again.
type seenSeries struct {
	cur, old hashSet
	maxSlots int
}

func (s *seenSeries) has(k uint64) bool {
	if s.cur.has(k) {
		return true
	}
	if !s.old.has(k) {
		return false
	}
	s.add(k)
	return true
}

func (s *seenSeries) add(k uint64) {
	if s.cur.full(s.maxSlots) {
		s.cur, s.old = s.old, s.cur
		s.cur.reset()
	}
	s.cur.add(k)
}

func (s *seenSeries) reset() {
	s.cur.reset()
	s.old.reset()
}

// seriesGuard enforces max_new_series: within any max_new_series_period at
// most that many series Librato has not been sent before by this process,
// the excess dropped, series already seen always let through. Series are
// compared as Librato compares them, by the identities the converter gave
// names and series (case-folded names and sources, lower-cased tags).
//
// The plugin cannot tell which series Librato already holds, and it cannot
// see where the agent's flush begins or ends either (Telegraf splits one
// into Writes of metric_batch_size, and an outage holds most of it back).
// So it warms up: from the first Write (after start, or after a change of
// API) until one max_new_series_period after the first Write that was
// delivered, every series is taken as known, however many. Inputs gather
// every series they have at least once per interval, so a restart drops
// none of the series that were flowing before it, as long as their inputs'
// interval is shorter than the period; and an outage at start does not eat
// the warm-up, since it counts from the first delivery. Series first seen
// after the warm-up count as new. The price: in the warm-up a tag
// explosion is not limited. The warm-up only fills the seen set, whose
// memory is bounded like the rest of the guard's.
type seriesGuard struct {
	now    func() time.Time
	period time.Duration
	window seriesWindow
	seen   seenSeries
	tagged bool

	// The warm-up. warmUntil is zero until a Write in the warm-up was
	// delivered; screenedAt is when the current Write was screened.
	started    bool
	warming    bool
	warmUntil  time.Time
	screenedAt time.Time
	learned    int // series taken as known in the warm-up

	log   telegraf.Logger
	stats *stats

	// The current Write's drops, reported once it succeeds: a failed
	// Write hands the metrics back to Telegraf, which offers them again.
	dropped  int
	examples []string
}

func newSeriesGuard(limit int, period time.Duration, st *stats, log telegraf.Logger) *seriesGuard {
	return &seriesGuard{
		now:    time.Now,
		period: period,
		window: newSeriesWindow(limit, period),
		seen:   seenSeries{maxSlots: maxSeenSlots},
		log:    log,
		stats:  st,
	}
}

// screen removes the points of series beyond the allowance from pts, in
// place. Series are keyed on what is sent in the API the points are for, so
// the mode is passed with every Write; a change of API starts a new warm-up.
func (g *seriesGuard) screen(pts []point, tagged bool) []point {
	g.dropped, g.examples = 0, g.examples[:0]
	if len(pts) == 0 {
		// Nothing to screen, and nothing that shows a change of API: with
		// api = "auto" and metrics without tags, every Write converts for
		// the tagged API first (nothing to send) and then goes to legacy.
		// Taking that as a change would restart the warm-up twice per
		// Write, and the limit would never apply.
		return pts
	}
	now := g.now()
	g.screenedAt = now
	if !g.started || tagged != g.tagged {
		g.seen.reset()
		g.started, g.tagged = true, tagged
		g.warming, g.warmUntil, g.learned = true, time.Time{}, 0
		g.log.Debugf("max_new_series: warming up: series are taken as known until %s after the first delivered flush", g.period)
	}
	if g.warming && !g.warmUntil.IsZero() && !now.Before(g.warmUntil) {
		g.warming = false
		g.log.Infof("max_new_series: warm-up over, %d series taken as known; new series count against the limit from now on", g.learned)
	}
	if g.warming {
		for i := range pts {
			if k := pointIdentity(&pts[i]); !g.seen.has(k) {
				g.seen.add(k)
				g.learned++
			}
		}
		return pts
	}
	allow := g.window.allowance(now)
	admitted := 0
	kept := pts[:0]
	for i := range pts {
		p := &pts[i]
		k := pointIdentity(p)
		switch {
		case g.seen.has(k):
		case admitted < allow:
			// Seen from now on: a retry of this Write, or the next ones
			// of the flush, must not count or drop it again.
			admitted++
			g.seen.add(k)
		default:
			g.refuse(p, tagged)
			continue
		}
		kept = append(kept, *p) // never past p: it was read first
	}
	g.window.take(admitted)
	return kept
}

// pointIdentity identifies the series of a point as Librato does: name and
// source, or name and tag set, compared as Librato compares them (by the
// identities the converter gave them).
func pointIdentity(p *point) uint64 {
	return pointKey(p.Series.Identity, p.NameHash)
}

func (g *seriesGuard) refuse(p *point, tagged bool) {
	g.dropped++
	if len(g.examples) == guardExamples {
		return
	}
	if tagged {
		g.examples = append(g.examples, p.Name+" "+p.Series.Tags)
	} else {
		g.examples = append(g.examples, p.Name+" source "+p.Series.Source)
	}
}

// settle reports the current Write's drops once they are final. The first
// delivered Write of a warm-up sets its end.
func (g *seriesGuard) settle(delivered bool) {
	if !delivered {
		return
	}
	if g.warming && g.warmUntil.IsZero() {
		g.warmUntil = g.screenedAt.Add(g.period)
	}
	if g.dropped == 0 {
		return
	}
	g.stats.dropped[reasonSeriesLimit].Incr(int64(g.dropped))
	g.log.Warnf("Dropped %d measurement(s) of new series: max_new_series = %d per %s reached, series already sent keep flowing; e.g. %s",
		g.dropped, g.window.limit, g.period, strings.Join(g.examples, ", "))
}
