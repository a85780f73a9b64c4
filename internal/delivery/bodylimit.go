package delivery

import (
	"sync"
	"time"
)

// The body limit: what the endpoint, or a proxy in front of it, takes.
//
// A 413 to a body larger than any the endpoint accepted lately teaches a
// limit: from then on, for the rest of the flush and for later flushes,
// bodies are cut at the larger of half the refused body and the largest
// body accepted lately. Batches not yet sent that are larger are cut before
// they go, so a body limit costs one refused request, not one per batch.
//
// A 413 that cannot be about size teaches nothing, and its measurements
// stay buffered without further requests: a body of one measurement (no
// limit is that small), a body below minBodyLimit, or a body no larger than
// one the endpoint accepted within limitMemory. That is a 413 outage — a
// proxy in trouble, a maintenance page — and it costs one request per
// batch. A limit learned from 413s that keep coming down to such bodies
// was not a limit: it is undone, and for limitMemory 413s are taken as an
// outage.
//
// The limit grows back carefully: by a quarter after growAfterAccepts
// accepted bodies near it, and only growWait after the last 413; a 413 to a
// grown body returns to the largest accepted one and doubles growWait (up to
// maxGrowWait), so a real limit costs one refused request per growWait, less
// and less often. It never grows above the configured size.
//
// Sizes are the estimated JSON sizes batches are cut by (encodedSize); with
// gzip, a proxy limits the compressed body, which the estimate tracks in
// proportion.

const (
	// minBodyLimit: no proxy limits bodies this small; a 413 to one is an
	// outage, not a limit.
	minBodyLimit = 1 << 10
	// limitMemory is how long an accepted size, or an outage, is remembered.
	limitMemory = time.Minute
	// growAfterAccepts bodies near the limit are accepted before it grows.
	growAfterAccepts = 16
	// minGrowWait and maxGrowWait bound the wait after a 413 before growing.
	minGrowWait = time.Minute
	maxGrowWait = time.Hour
)

// limitVerdict is what a 413 means.
type limitVerdict int

const (
	notSize limitVerdict = iota // an outage: keep the measurements, split nothing
	shrunk                      // a body limit: cut the request at fits
)

// bodyLimit learns the endpoint's body limit across flushes. It is safe for
// concurrent use; its methods take the time as an argument (the Sender's
// clock), so it is a pure policy over the answers and times it is given.
type bodyLimit struct {
	mu       sync.Mutex
	max      int // the configured size: never cut above it
	limit    int // bodies are cut at this size
	restore  int // the limit before an unconfirmed shrink (0: none pending)
	good     int // the largest body accepted lately…
	goodAt   time.Time
	outageAt time.Time // …and when 413s were last shown to be an outage
	// Growing back: accepted bodies near the limit since it last changed,
	// and when it may grow next.
	accepts  int
	growAt   time.Time
	growWait time.Duration
	grown    bool // the limit grew since the last 413
}

func newBodyLimit(maxSize int) *bodyLimit {
	return &bodyLimit{max: maxSize, limit: maxSize, growWait: minGrowWait}
}

// size is the limit batches are cut at now.
func (b *bodyLimit) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit
}

// accepted records that the endpoint took a body of size bytes.
func (b *bodyLimit) accepted(size int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forget(now)
	if size >= b.good*3/4 {
		b.good, b.goodAt = max(b.good, size), now
	}
	if b.restore != 0 && size <= b.limit {
		b.restore = 0 // a body cut at the new limit went through: it is real
	}
	if b.limit >= b.max || size < b.limit*3/4 {
		return // small bodies say nothing about the limit
	}
	b.accepts++
	if b.accepts >= growAfterAccepts && !now.Before(b.growAt) {
		b.limit = min(b.max, b.limit+b.limit/4)
		b.accepts, b.grown = 0, true
	}
}

// refused judges a 413 to a body of size bytes carrying n measurements.
func (b *bodyLimit) refused(size, n int, now time.Time) limitVerdict {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forget(now)
	if n <= 1 || size <= minBodyLimit {
		if b.restore != 0 {
			// Halving came down to bodies no limit explains.
			b.limit, b.restore = b.restore, 0
			b.outageAt = now
		}
		return notSize
	}
	if (b.good > 0 && size <= b.good) || !b.outageAt.IsZero() {
		return notSize
	}
	if b.grown {
		b.growWait = min(2*b.growWait, maxGrowWait)
		b.grown = false
	}
	b.growAt = now.Add(b.growWait)
	next := max(size/2, b.good, minBodyLimit)
	if next < b.limit {
		if b.restore == 0 {
			b.restore = b.limit
		}
		b.limit, b.accepts = next, 0
	}
	return shrunk
}

// forget drops what is older than limitMemory.
func (b *bodyLimit) forget(now time.Time) {
	if b.good > 0 && now.Sub(b.goodAt) > limitMemory {
		b.good = 0
	}
	if !b.outageAt.IsZero() && now.Sub(b.outageAt) > limitMemory {
		b.outageAt = time.Time{}
	}
}

// bodySize is the estimated body of pts, the measure batches are cut by.
func bodySize(pts []Measurement) int {
	n := 0
	for i := range pts {
		n += encodedSize(&pts[i])
	}
	return n
}

// pieces is how many requests cut sends for pts at limit.
func pieces(pts []Measurement, limit int) int {
	n, size := 1, 0
	for i := range pts {
		m := encodedSize(&pts[i])
		if i > 0 && size+m > limit {
			n, size = n+1, 0
		}
		size += m
	}
	return n
}

// cut sends pts in pieces that fit the body limit, in order.
func (f *flush) cut(pts []Measurement, settled []bool, t try) error {
	limit := f.s.limit.size()
	start, size := 0, 0
	for i := range pts {
		m := encodedSize(&pts[i])
		if i > start && size+m > limit {
			if err := f.send(pts[start:i], settled[start:i], t); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += m
	}
	return f.send(pts[start:], settled[start:], t)
}
