package delivery

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// admission decides when a request may start, for every flush of a Sender:
// the pause the API asked for (the gate, with its single probe after a
// pause), the request's slot in the pacing, and the count of requests
// committed (in flight or holding a slot), which the pacing reserves budget
// for. A request calls admit before it is sent and done once it is answered;
// every answer's headers go through observe.
type admission struct {
	clock     Clock
	gate      rateGate
	pace      pacer
	committed atomic.Int64
}

// ticket is an admitted request; probe: it is the first after a pause, and
// the others wait for its answer.
type ticket struct{ probe bool }

func newAdmission(c Clock, maxPause time.Duration, onClamp func(hint, pause time.Duration)) *admission {
	return &admission{
		clock: c,
		gate:  rateGate{clock: c, maxPause: maxPause, onClamp: onClamp},
		pace:  pacer{maxReset: maxPause},
	}
}

// admit waits until a request may start: no pause in force, and its slot
// in the pacing. sendBy ends waits for a pause, startBy the pacing's slots.
// The request counts as committed from its slot on, so the pacing reserves
// budget for it. A pause that began while it waited for its slot sends it
// back to the gate. On success the caller must call done.
func (a *admission) admit(ctx context.Context, sendBy, startBy time.Time) (ticket, error) {
	for {
		probe, err := a.gate.wait(ctx, sendBy)
		if err != nil {
			return ticket{}, err
		}
		a.committed.Add(1)
		if probe {
			return ticket{probe: true}, nil
		}
		if err := a.pace.wait(ctx, a.clock, startBy); err != nil {
			a.committed.Add(-1)
			return ticket{}, err
		}
		if a.gate.open() {
			return ticket{}, nil
		}
		a.committed.Add(-1)
	}
}

// done ends an admitted request, after observe has seen its answer (if any).
func (a *admission) done(t ticket) {
	a.committed.Add(-1)
	if t.probe {
		a.gate.probeAnswered()
	}
}

// observe reads an answer's rate-limit headers into the pacing; it returns
// the pause the budget calls for and the budget seen, for the self-metrics.
func (a *admission) observe(h http.Header, now time.Time) (time.Duration, rateLimit) {
	return a.pace.observe(h, now, int(a.committed.Load())-1) // the others
}

// pause holds every request of every flush for the API's hint (capped).
func (a *admission) pause(hint time.Duration) { a.gate.pause(hint) }
