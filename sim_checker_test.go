package librato

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/seed-d22a899f/librato/internal/simlibrato"
)

// The checker is tested on hand-written histories: it must flag what breaks
// an invariant and pass what keeps it, or the simulation proves nothing.

const fieldError400 = `{"errors":{"params":{"value":["is invalid"]}}}`

// histOp is a request in a hand-written history: values are the
// measurements it carried (by id), sent and done its event numbers.
type histOp struct {
	write, instance int
	path            string
	values          []uint64
	sent, done      uint64
	status          int
	answer          string
	stored          bool
	failed          int
}

func history(truths []*truth, ops ...histOp) *simRun {
	cfg := simConfig{api: apiLegacy, timeout: time.Second, healthyFlushes: 1, rules: simlibrato.Rules{PastWindow: time.Hour}}
	run := &simRun{cfg: cfg, byID: map[uint64]*truth{}, logs: &simLog{}}
	for _, t := range truths {
		run.truths = append(run.truths, t)
		run.byID[t.id] = t
	}
	for i, h := range ops {
		op := &simlibrato.Op{Seq: i, Write: h.write, Instance: max(h.instance, 1), Host: simHost, Path: h.path,
			SentAt: time.Unix(946684800, int64(h.sent)*int64(time.Millisecond)), SentSeq: h.sent, AnsweredSeq: h.done, DoneSeq: h.done,
			Status: h.status, Answer: []byte(h.answer), Complete: h.done > 0, Failed: h.failed}
		if op.Path == "" {
			op.Path = simlibrato.LegacyPath
		}
		for j, v := range h.values {
			t := run.byID[v]
			op.Measurements = append(op.Measurements, simlibrato.Measurement{Name: t.name, Source: t.host, Time: t.time, Value: float64(v)})
			if h.stored {
				op.Stored = append(op.Stored, j)
			}
		}
		run.ops = append(run.ops, op)
	}
	return run
}

func gaugeTruth(id uint64) *truth {
	return &truth{id: id, name: "cpu.f0", host: "web1", time: 946684800, writes: []int{1}}
}

func kinds(vs []violation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.kind)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestCheckerEvidenceRule(t *testing.T) {
	poison := func() *truth {
		t := gaugeTruth(1)
		t.time = 1 // too far in the past for any window: Librato refuses it
		return t
	}
	r1 := histOp{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 400, answer: fieldError400}
	a := histOp{write: 1, values: []uint64{2}, sent: 3, done: 4, status: 200, stored: true}
	r2 := histOp{write: 1, values: []uint64{1}, sent: 5, done: 6, status: 400, answer: fieldError400}
	tests := []struct {
		name string
		ops  []histOp
		want []string
	}{
		{"R1, A, R2", []histOp{r1, a, r2}, nil},
		{"R1 and A only", []histOp{r1, a}, []string{"drop-unproven-poison"}},
		{"A before R1's answer", []histOp{r1, {write: 1, values: []uint64{2}, sent: 2, done: 3, status: 200, stored: true},
			{write: 1, values: []uint64{1}, sent: 4, done: 6, status: 400, answer: fieldError400}}, []string{"drop-unproven-poison"}},
		{"R2 before A's answer", []histOp{r1, a, {write: 1, values: []uint64{1}, sent: 4, done: 6, status: 400, answer: fieldError400}},
			[]string{"drop-unproven-poison"}},
		{"A in another Write", []histOp{r1, {write: 2, values: []uint64{2}, sent: 3, done: 4, status: 200, stored: true},
			{write: 1, values: []uint64{1}, sent: 5, done: 6, status: 400, answer: fieldError400}}, []string{"drop-unproven-poison"}},
		{"A at the other URL", []histOp{r1, {write: 1, path: simlibrato.TaggedPath, values: []uint64{2}, sent: 3, done: 4, status: 202, stored: true}, r2},
			[]string{"drop-unproven-poison"}},
		{"R1 cut off", []histOp{{write: 1, values: []uint64{1}, sent: 1, status: 400, answer: fieldError400}, a, r2},
			[]string{"drop-unproven-poison"}},
		{"name as context only", []histOp{
			{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 400, answer: `{"errors":{"params":{"name":"cpu.f0"}}}`}, a,
			{write: 1, values: []uint64{1}, sent: 5, done: 6, status: 400, answer: `{"errors":{"params":{"name":"cpu.f0"}}}`}},
			[]string{"drop-unproven-poison"}},
		{"name with messages", []histOp{
			{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 422, answer: `{"errors":{"params":{"name":["is too long"]}}}`}, a,
			{write: 1, values: []uint64{1}, sent: 5, done: 6, status: 422, answer: `{"errors":{"params":{"name":["is too long"]}}}`}}, nil},
		{"HTML 400", []histOp{{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 400, answer: "<html>400</html>"}, a,
			{write: 1, values: []uint64{1}, sent: 5, done: 6, status: 400, answer: "<html>400</html>"}}, []string{"drop-unproven-poison"}},
		{"R1 carried two", []histOp{{write: 1, values: []uint64{1, 3}, sent: 1, done: 2, status: 400, answer: fieldError400}, a,
			{write: 1, values: []uint64{3}, sent: 3, done: 4, status: 200, stored: true},
			{write: 1, values: []uint64{1}, sent: 5, done: 6, status: 400, answer: fieldError400}}, []string{"drop-unproven-poison"}},
		{"tagged summary failure", []histOp{{write: 1, path: simlibrato.TaggedPath, values: []uint64{1, 2}, sent: 1, done: 2,
			status: 202, failed: 1}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			truths := []*truth{poison(), gaugeTruth(2)}
			if slices.ContainsFunc(tt.ops, func(h histOp) bool { return slices.Contains(h.values, 3) }) {
				truths = append(truths, gaugeTruth(3))
			}
			run := history(truths, tt.ops...)
			if tt.name == "tagged summary failure" {
				run.ops[0].Stored = []int{1}
			}
			got, _ := check(run)
			if g := kinds(got); !slices.Equal(g, tt.want) {
				t.Errorf("violations %v, want %v: %v", g, tt.want, got)
			}
		})
	}
}

func TestCheckerValidDropIsDataLoss(t *testing.T) {
	valid := gaugeTruth(1)
	valid.writes = []int{2}
	run := history([]*truth{valid, gaugeTruth(2)},
		histOp{write: 1, values: []uint64{2}, sent: 1, done: 2, status: 200, stored: true},
		histOp{write: 2, values: []uint64{1}, sent: 3, done: 4, status: 400, answer: fieldError400})
	got, _ := check(run)
	if g := kinds(got); !slices.Equal(g, []string{"drop-unproven-valid"}) {
		t.Errorf("violations %v, want drop-unproven-valid", got)
	}
}

func TestCheckerDuplicates(t *testing.T) {
	tests := []struct {
		name  string
		first histOp
		want  []string
	}{
		{"acknowledged, same instance", histOp{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 200, stored: true},
			[]string{"dup-unexplained"}},
		{"lost acknowledgement", histOp{write: 1, values: []uint64{1}, sent: 1, stored: true}, nil},
		{"503 after storing", histOp{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 503, stored: true}, nil},
		{"acknowledged, then a restart", histOp{write: 1, instance: 2, values: []uint64{1}, sent: 1, done: 2, status: 200, stored: true}, nil},
		{"acknowledged on the other API", histOp{write: 1, path: simlibrato.TaggedPath, values: []uint64{1}, sent: 1, done: 2,
			status: 202, stored: true}, []string{"dup-api-switch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := history([]*truth{gaugeTruth(1)}, tt.first,
				histOp{write: 2, instance: 1, values: []uint64{1}, sent: 3, done: 4, status: 200, stored: true})
			got, _ := check(run)
			if g := kinds(got); !slices.Equal(g, tt.want) {
				t.Errorf("violations %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckerLeaks(t *testing.T) {
	for _, form := range credentialForms() {
		run := history([]*truth{gaugeTruth(1)}, histOp{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 200, stored: true})
		run.writes = []simWrite{{n: 1, err: errors.New("librato answered 400: " + form)}}
		got, _ := check(run)
		if g := kinds(got); !slices.Equal(g, []string{"leak"}) {
			t.Errorf("form %q: violations %v, want a leak", form, got)
		}
	}
	run := history([]*truth{gaugeTruth(1)}, histOp{write: 1, values: []uint64{1}, sent: 1, done: 2, status: 200, stored: true})
	run.ops[0].Foreign = true
	if got, _ := check(run); !slices.Equal(kinds(got), []string{"foreign-request"}) {
		t.Errorf("a request to another host: violations %v", got)
	}
}

func TestCheckerWedgeAndDeadline(t *testing.T) {
	buffered := gaugeTruth(1)
	buffered.buffered = true
	run := history([]*truth{buffered})
	start := time.Unix(946684800, 0)
	run.writes = []simWrite{{n: 1, start: start, end: start.Add(2 * time.Second)}}
	got, _ := check(run)
	if g := kinds(got); !slices.Equal(g, []string{"deadline", "wedge"}) {
		t.Errorf("violations %v, want deadline and wedge", got)
	}
}
