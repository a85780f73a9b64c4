package delivery

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The cost of safety: what dense poison and 413s cost in requests and
// flushes, measured against the in-memory Librato with the plugin's
// defaults (300 measurements per request, 10 concurrent). Each case logs
// one row:
//
//	go test -count=1 -run 'Poison|413|Limit' -v ./internal/delivery | grep '| '

var costStart = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// costWorkload is n measurements: three fields per metric, 20 hosts,
// one second apart per round of hosts, the newest first.
func costWorkload(n int) []Measurement {
	hosts := make([]Series, 20)
	for i := range hosts {
		hosts[i] = Series{Source: fmt.Sprintf("host%02d", i)}
	}
	fields := [3]string{"cpu.idle", "cpu.user", "cpu.system"}
	ms := make([]Measurement, n)
	for i := range ms {
		metric := i / 3
		ms[i] = Measurement{
			Name:   fields[i%3],
			Series: &hosts[metric%20],
			Time:   costStart.Unix() - 60 - int64(metric/20),
			Value:  float64(i),
		}
	}
	return ms
}

func keyOf(m *Measurement) memGauge {
	return memGauge{Name: m.Name, Source: m.Series.Source, Value: m.Value, Time: m.Time}
}

// costRow checks what arrived and logs the row.
func costRow(t *testing.T, lib *memLibrato, ms []Measurement, bad map[memGauge]bool, rejected *testStat, perFlush []int64) {
	t.Helper()
	delivered, dups := 0, 0
	for i := range ms {
		k := keyOf(&ms[i])
		n := lib.stored[k]
		if bad[k] {
			require.Zero(t, n, "%v was stored", k)
			continue
		}
		require.Positive(t, n, "%v was not delivered", k)
		delivered++
		dups += n - 1
	}
	require.Zero(t, dups, "duplicates")
	require.Equal(t, int64(len(bad)), rejected.Get(), "every bad measurement dropped, each on its own proof, nothing else")
	var total int64
	for _, n := range perFlush {
		total += n
	}
	t.Logf("| %s | %d requests (per flush %v) | %d delivered | %d dropped | %d duplicated | %d flush(es) |",
		t.Name(), total, perFlush, delivered, rejected.Get(), dups, len(perFlush))
}

// TestDensePoison: one bad measurement per 300 among 100,000, for rules
// the plugin does not know, phrased as Librato does, without a useful
// hint, and with a wrong one. Every good measurement arrives once, every
// bad one is dropped with its own proof, within three flushes.
func TestDensePoison(t *testing.T) {
	const n = 100_000
	old := costStart.Add(-3 * time.Hour).Unix()
	cases := []struct {
		name string
		// metrics: the bad unit is a whole metric (its fields share a
		// series and a time); else one measurement.
		metrics bool
		// spoil makes a measurement bad; nil leaves it as it is (the rule
		// knows it by its key).
		spoil  func(m *Measurement, bad *Series)
		rule   func(bad map[memGauge]bool) func(memGauge) (string, string, bool)
		phrase func(memGauge, string, string) string
	}{
		{name: "value, the metric named", rule: byKey("value", "is not a number"), phrase: namedPhrase},
		{name: "value, no hint", rule: byKey("value", "is invalid"),
			phrase: func(memGauge, string, string) string { return `{"errors":{"params":{"value":["is invalid"]}}}` }},
		{name: "measure_time too old", metrics: true,
			spoil: func(m *Measurement, _ *Series) { m.Time = old },
			rule: func(map[memGauge]bool) func(memGauge) (string, string, bool) {
				return func(g memGauge) (string, string, bool) {
					return "measure_time", "is too far in the past", g.Time < costStart.Add(-2*time.Hour).Unix()
				}
			}, phrase: namedPhrase},
		{name: "source refused", metrics: true,
			spoil: func(m *Measurement, bad *Series) { m.Series = bad },
			rule: func(map[memGauge]bool) func(memGauge) (string, string, bool) {
				return func(g memGauge) (string, string, bool) {
					return "source", g.Source + " is not a valid source name", len(g.Source) > 20
				}
			}, phrase: namedPhrase},
		{name: "wrong hint: blames the oldest time", rule: byKey("value", ""),
			phrase: func(g memGauge, _, _ string) string {
				return fmt.Sprintf(`{"errors":{"params":{"measure_time":["is too far in the past"],"name":%q}}}`, g.Name)
			}},
		{name: "wrong hint: blames another source", rule: byKey("value", ""),
			phrase: func(memGauge, string, string) string {
				return `{"errors":{"params":{"source":["host00 is not a valid source name"]}}}`
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms := costWorkload(n)
			rng := rand.New(rand.NewPCG(15, 4)) //nolint:gosec // a fixed seed, not a secret
			badSeries := &Series{Source: "host-refused-by-a-rule-the-plugin-does-not-know"}
			bad := map[memGauge]bool{}
			for _, i := range rng.Perm(n)[:n/300] {
				idx := []int{i}
				if tc.metrics {
					if i%3 != 0 {
						continue // one metric per three picks: the same density
					}
					idx = []int{i, i + 1, i + 2}
				}
				for _, j := range idx {
					if tc.spoil != nil {
						tc.spoil(&ms[j], badSeries)
					}
					bad[keyOf(&ms[j])] = true
				}
			}
			lib := &memLibrato{rule: tc.rule(bad), phrase: tc.phrase}
			clock := &fakeClock{now: costStart}
			s, rejected := costSender(t, lib, clock)
			all := append([]Measurement(nil), ms...)

			perFlush := flushes(t, s, lib, clock, ms, 3)
			costRow(t, lib, all, bad, rejected, perFlush)
		})
	}
}

// byKey is a rule that refuses the measurements of bad for field.
func byKey(field, msg string) func(map[memGauge]bool) func(memGauge) (string, string, bool) {
	return func(bad map[memGauge]bool) func(memGauge) (string, string, bool) {
		return func(g memGauge) (string, string, bool) { return field, msg, bad[g] }
	}
}
