package listener

import (
	"sync"
	"time"

	"github.com/influxdata/telegraf"
)

// outcome is how a request's hand-off to the outputs ended.
type outcome int

const (
	delivered outcome = iota // every metric written (or dropped by a filter)
	rejected                 // an output dropped at least one metric
	timedOut                 // delivery_timeout passed first
	stopping                 // the plugin is stopping
)

// tracker hands each request's metrics to Telegraf as one tracking group
// and tells the request's handler how delivery ended. It bounds what is
// outstanding the way the queue consumers do (max_undelivered_messages):
// the tracking accumulator's delivery channel holds at most
// maxRequests reports, so a group only counts as done when its report
// arrives, not when its handler gave up waiting.
type tracker struct {
	acc         telegraf.TrackingAccumulator
	maxRequests int
	maxMetrics  int

	mu       sync.Mutex
	requests int // groups added whose report has not arrived
	metrics  int // their metrics
	waiters  map[telegraf.TrackingID]waiter
	// early holds reports that arrived before their handler registered (the
	// group can be written between AddTrackingMetricGroup and the lock).
	early map[telegraf.TrackingID]bool

	done     chan struct{}
	stopOnce sync.Once
}

type waiter struct {
	ch      chan bool
	metrics int
}

func newTracker(acc telegraf.TrackingAccumulator, maxRequests, maxMetrics int) *tracker {
	return &tracker{
		acc:         acc,
		maxRequests: maxRequests,
		maxMetrics:  maxMetrics,
		waiters:     make(map[telegraf.TrackingID]waiter),
		early:       make(map[telegraf.TrackingID]bool),
		done:        make(chan struct{}),
	}
}

// admit reserves room for a request of n metrics, or reports that the
// bound is reached. A request larger than max_undelivered_metrics is still
// admitted when nothing is outstanding, so it cannot be refused forever.
func (t *tracker) admit(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		return false
	default:
	}
	if t.requests >= t.maxRequests {
		return false
	}
	if t.maxMetrics > 0 && t.metrics > 0 && t.metrics+n > t.maxMetrics {
		return false
	}
	t.requests++
	t.metrics += n
	return true
}

// deliver adds an admitted request's metrics and waits until the outputs
// report them, the timeout passes or the plugin stops.
func (t *tracker) deliver(metrics []telegraf.Metric, timeout time.Duration) outcome {
	n := len(metrics)
	id := t.acc.AddTrackingMetricGroup(metrics)
	ch := make(chan bool, 1)
	t.mu.Lock()
	if ok, found := t.early[id]; found {
		delete(t.early, id)
		t.requests--
		t.metrics -= n
		ch <- ok
	} else {
		t.waiters[id] = waiter{ch: ch, metrics: n}
	}
	t.mu.Unlock()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ok := <-ch:
		if ok {
			return delivered
		}
		return rejected
	case <-timer.C:
		// The waiter stays registered: the report still has to arrive to
		// free the reservation, and ch is buffered so run never blocks.
		return timedOut
	case <-t.done:
		return stopping
	}
}

// run reads delivery reports until stop.
func (t *tracker) run() {
	for {
		select {
		case info := <-t.acc.Delivered():
			t.report(info.ID(), info.Delivered())
		case <-t.done:
			return
		}
	}
}

func (t *tracker) report(id telegraf.TrackingID, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, found := t.waiters[id]
	if !found {
		t.early[id] = ok
		return
	}
	delete(t.waiters, id)
	t.requests--
	t.metrics -= w.metrics
	w.ch <- ok
}

func (t *tracker) stop() {
	t.stopOnce.Do(func() { close(t.done) })
}
