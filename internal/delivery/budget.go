package delivery

import "sync/atomic"

const (
	// refundPerAccepted is what an accepted extra request gives back to
	// the split budget: the request it cost and one more. See splitBudget.
	refundPerAccepted = 2
	// refundPerDrop is what a measurement dropped on proof gives back:
	// about four times what singling it out cost (a search step of two
	// requests per measurement, in a request where all are bad), so that
	// each round of a Write (flush.rounds) can search about four times as
	// many as the last. See splitBudget.
	refundPerDrop = 8
)

// splitBudget is the extra requests one flush may spend beyond one per
// batch: the parts of requests answered 413 and the search for the
// measurements of requests Librato rejected.
//
// It starts at ExtraRequests + ExtraRequestsPerBatch per batch and grows with
// progress: an extra request that is accepted gives back more than it cost
// (refundPerAccepted). A search for one bad measurement among good ones sends
// about as many parts that are accepted as parts that are rejected, so with
// the refund it costs the budget next to nothing, and dense poison (one bad
// measurement in every batch) is searched to the end in one flush instead of
// running dry after a few batches. An endpoint that accepts nothing gets no
// refund, so what it can cost is the starting amount, as before.
//
// A measurement dropped on proof is progress too (refundPerDrop): without
// it, a Write in which everything is rejected (a backlog too far in the
// past) would never grow its budget and would clear a few dozen
// measurements per flush. The proof needs an acceptance, so an endpoint
// that refuses everything, the control request included, still gets no
// refund. Every refund settles at least one measurement, so a flush of n
// measurements spends at most start + refundPerDrop×n extra requests, and
// the flush's deadline bounds it too.
type splitBudget struct {
	left atomic.Int64
}

// reset starts the budget of a flush of that many batches.
func (b *splitBudget) reset(batches int) {
	b.left.Store(int64(ExtraRequests + ExtraRequestsPerBatch*batches))
}

// spend takes n requests, or none if fewer are left.
func (b *splitBudget) spend(n int) bool {
	if b.left.Add(-int64(n)) >= 0 {
		return true
	}
	b.left.Add(int64(n))
	return false
}

// accepted is the progress of an extra request that Librato accepted.
func (b *splitBudget) accepted() {
	b.left.Add(refundPerAccepted)
}

// dropped is the progress of a measurement dropped on proof.
func (b *splitBudget) dropped() {
	b.left.Add(refundPerDrop)
}
