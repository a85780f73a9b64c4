package delivery

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPlanSearch: the order the rejection suggests, and the step taken.
func TestPlanSearch(t *testing.T) {
	a, b, long := &Series{Source: "a"}, &Series{Source: "b"}, &Series{Source: "a-much-longer-source"}
	g := func(name string, s *Series, tm int64, v float64) Measurement {
		return Measurement{Name: name, Series: s, Time: tm, Value: v}
	}
	sum := Measurement{Name: "h", Series: a, Time: 100, Summary: &Summary{Count: 3, Sum: 1e30}}
	// eight measurements: two metrics of three fields at times 100 and 90
	// (the older one from source b), and two lone ones.
	base := func() []Measurement {
		return []Measurement{
			g("x.1", a, 100, 1), g("x.2", a, 100, 2), g("x.3", a, 100, 3),
			g("x.1", b, 90, 4), g("x.2", b, 90, 5), g("x.3", b, 90, 6),
			g("y", a, 95, 7), g("z", a, 97, 8),
		}
	}
	names := func(ms []Measurement) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Name + "@" + m.Series.Source
		}
		return out
	}
	cases := []struct {
		name  string
		pts   []Measurement
		h     hint
		guess bool
		want  searchStep
		first []string // the order's start
	}{
		{name: "no hint: halves, oldest first", pts: base(), h: hint{fields: []string{"unknown"}}, guess: true,
			want: searchStep{cut: 4}, first: []string{"x.1@b", "x.2@b", "x.3@b", "y@a"}},
		{name: "measure_time: the oldest metric alone, field by field", pts: base(), h: hint{fields: []string{"measure_time"}}, guess: true,
			want: searchStep{alone: 3, cut: 8, guess: true}, first: []string{"x.1@b", "x.2@b", "x.3@b"}},
		{name: "measure_time in the future: the newest first", pts: base(), h: hint{fields: []string{"measure_time"}, future: true}, guess: true,
			want: searchStep{alone: 3, cut: 8, guess: true}, first: []string{"x.1@a", "x.2@a", "x.3@a"}},
		{name: "a blamed name, without case", pts: base(), h: hint{fields: []string{"value"}, names: []string{"Y"}}, guess: true,
			want: searchStep{alone: 1, cut: 8, guess: true}, first: []string{"y@a"}},
		{name: "a blamed source: its metric", pts: base(), h: hint{fields: []string{"source"}, sources: []string{"b"}}, guess: true,
			want: searchStep{alone: 3, cut: 8, guess: true}, first: []string{"x.1@b", "x.2@b", "x.3@b"}},
		{name: "a wrong guess before: halves whatever the hint", pts: base(), h: hint{fields: []string{"measure_time"}}, guess: false,
			want: searchStep{cut: 4}, first: []string{"x.1@b", "x.2@b", "x.3@b"}},
		{name: "value: the extreme magnitude alone",
			pts: []Measurement{g("p", a, 1, 3e9), g("q", a, 1, 1e300), g("r", a, 1, 5), g("s", a, 1, 1e-3)},
			h:   hint{fields: []string{"value"}}, guess: true,
			want: searchStep{alone: 1, cut: 4, guess: true}, first: []string{"q@a"}},
		{name: "source: the longest first",
			pts: []Measurement{g("p", a, 1, 1), g("q", long, 1, 1), g("r", b, 1, 1)},
			h:   hint{fields: []string{"source"}}, guess: true,
			want: searchStep{alone: 1, cut: 3, guess: true}, first: []string{"q@a-much-longer-source"}},
		{name: "a summary field: summaries first", pts: append(base(), sum), h: hint{fields: []string{"sum"}}, guess: true,
			want: searchStep{alone: 1, cut: 9, guess: true}, first: []string{"h@a"}},
		{name: "value: summaries last", pts: []Measurement{sum, g("p", a, 100, 1)}, h: hint{fields: []string{"value"}}, guess: true,
			want: searchStep{alone: 1, cut: 2, guess: true}, first: []string{"p@a"}},
		{name: "a blamed name shared by many: that group, then the rest",
			pts: append(append(base(), base()...), base()...), h: hint{fields: []string{"unknown"}, names: []string{"x.1", "x.2"}}, guess: true,
			want: searchStep{cut: 12, guess: true}},
		{name: "blamed names; ordinary values tie",
			pts: append(append(base(), base()...), base()...), h: hint{fields: []string{"value"}, names: []string{"x.1", "x.2"}}, guess: true,
			want: searchStep{cut: 12, guess: true}},
		{name: "blamed names, then the field: an extreme value among them",
			pts: append(base(), g("x.1", a, 99, -1e-300), g("w", a, 99, 1e300)), h: hint{fields: []string{"value"}, names: []string{"x.1"}}, guess: true,
			want: searchStep{alone: 1, cut: 10, guess: true}, first: []string{"x.1@a"}},
		{name: "a blamed name shared by most: halves, the suspects first",
			pts: base(), h: hint{fields: []string{"unknown"}, names: []string{"x.1", "x.2", "x.3"}}, guess: true,
			want: searchStep{cut: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step := planSearch(tc.pts, tc.h, tc.guess)
			require.Equal(t, tc.want, step)
			if tc.first != nil {
				require.Equal(t, tc.first, names(tc.pts)[:len(tc.first)])
			}
			guessed := step.alone
			if guessed == 0 {
				guessed = step.cut
			}
			for i := range guessed {
				if len(tc.h.names) > 0 {
					require.True(t, containsFold(tc.h.names, tc.pts[i].Name), "suspects first")
				}
			}
		})
	}
}

func TestSearchStepRequests(t *testing.T) {
	require.Equal(t, 2, searchStep{cut: 4}.requests(8), "halves")
	require.Equal(t, 4, searchStep{alone: 3, cut: 8}.requests(8), "three alone, then the rest")
	require.Equal(t, 2, searchStep{cut: 3}.requests(8), "a group, then the rest")
}

func TestHintOf(t *testing.T) {
	body := `{"errors":{"params":{"measure_time":["is too far in the future"],"value":["is not a number"],"name":"cpu"}}}`
	o := classify(400, nil, []byte(body), false, costStart)
	h := hintOf(o)
	require.Equal(t, []string{"measure_time", "value"}, h.fields)
	require.Equal(t, []string{"cpu"}, h.names)
	require.True(t, h.future)
}

// TestSplitBudget: the budget grows only with acceptances.
func TestSplitBudget(t *testing.T) {
	var b splitBudget
	b.reset(10)
	start := int64(ExtraRequests + 10*ExtraRequestsPerBatch)
	require.Equal(t, start, b.left.Load())

	// An endpoint that accepts nothing: the start, and not one more.
	spent := 0
	for b.spend(2) {
		spent += 2
	}
	require.Equal(t, int(start), spent)
	require.False(t, b.spend(1))

	// A search that is accepted about half the time never runs dry: each
	// halving costs two, the accepted half gives two back.
	b.reset(1)
	for range 10_000 {
		require.True(t, b.spend(2))
		b.accepted()
	}
	require.Equal(t, int64(ExtraRequests+ExtraRequestsPerBatch), b.left.Load())
}
