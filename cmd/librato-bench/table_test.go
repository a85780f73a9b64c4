package main

import (
	"testing"
	"time"

	"github.com/seed-d22a899f/librato/internal/benchkit"
)

// TestSummarizeRounds: a pooled result reports its medians over every
// batch, and its total and first batch per round.
func TestSummarizeRounds(t *testing.T) {
	round := func(first, rest time.Duration) benchkit.JobResult {
		return benchkit.JobResult{Batches: []benchkit.Batch{{CPU: first, Gauges: 100}, {CPU: rest, Gauges: 100}, {CPU: rest, Gauges: 100}}}
	}
	cases := []struct {
		name               string
		result             benchkit.JobResult
		batches, gauges    int
		total, first, med  time.Duration
		medianNs, totalNsG float64
	}{
		{"one run", round(9, 3), 3, 300, 15, 9, 3, 0.03, 0.05},
		{"three rounds", benchkit.Pool([]benchkit.JobResult{round(9, 3), round(7, 3), round(20, 3)}), 3, 300, 18, 9, 3, 0.03, 0.06},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := summarize(tc.result)
			if s.batches != tc.batches || s.gauges != tc.gauges {
				t.Errorf("batches %d, gauges %d; want %d per round, %d gauges per round", s.batches, s.gauges, tc.batches, tc.gauges)
			}
			if s.total != tc.total || s.first != tc.first || s.median != tc.med {
				t.Errorf("total %v, first %v, median %v; want %v (mean of the rounds' totals), %v (median first), %v",
					s.total, s.first, s.median, tc.total, tc.first, tc.med)
			}
			if s.medianNs != tc.medianNs || s.totalNs != tc.totalNsG {
				t.Errorf("ns per gauge: median %v, total %v; want %v, %v", s.medianNs, s.totalNs, tc.medianNs, tc.totalNsG)
			}
		})
	}
}
