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
		{name: "value, the metric named", rule: byKey("is not a number"), phrase: namedPhrase},
		{name: "value, no hint", rule: byKey("is invalid"),
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
		{name: "wrong hint: blames the oldest time", rule: byKey(""),
			phrase: func(g memGauge, _, _ string) string {
				return fmt.Sprintf(`{"errors":{"params":{"measure_time":["is too far in the past"],"name":%q}}}`, g.Name)
			}},
		{name: "wrong hint: blames another source", rule: byKey(""),
			phrase: func(memGauge, string, string) string {
				return `{"errors":{"params":{"source":["host00 is not a valid source name"]}}}`
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms := costWorkload(n)
			rng := rand.New(rand.NewPCG(15, 4)) // a fixed seed: the same poison every run
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

// byKey is a rule that refuses the values of the measurements of bad.
func byKey(msg string) func(map[memGauge]bool) func(memGauge) (string, string, bool) {
	return func(bad map[memGauge]bool) func(memGauge) (string, string, bool) {
		return func(g memGauge) (string, string, bool) { return "value", msg, bad[g] }
	}
}

// limitRun delivers fresh measurements each flush (what the last flush left
// is sent again) and returns, per flush, the requests, the 413s and the
// batches the flush would have at the configured size.
type limitFlush struct{ requests, refused, batches int64 }

func limitRun(t *testing.T, s *Sender, lib *memLibrato, clock *fakeClock, perFlush, flushCount int) ([]limitFlush, []Measurement) {
	t.Helper()
	rows := make([]limitFlush, 0, flushCount)
	all := make([]Measurement, 0, flushCount*perFlush)
	var pending []Measurement
	for k := range flushCount {
		fresh := costWorkload(perFlush)
		for i := range fresh {
			fresh[i].Value += float64(k * perFlush) // new values: new keys
		}
		all = append(all, fresh...)
		pending = append(pending, fresh...)
		req, ref := lib.requests.Load(), lib.refused413.Load()
		res, err := s.Deliver(pending, Endpoint{URL: "https://metrics-api.librato.com/v1/metrics"}, clock.Now())
		rows = append(rows, limitFlush{lib.requests.Load() - req, lib.refused413.Load() - ref, int64((len(pending) + 299) / 300)})
		if err != nil {
			t.Logf("flush %d: %v", k+1, err)
		}
		left := pending[:0]
		for i := range pending {
			if len(res.Settled) == 0 || !res.Settled[i] {
				left = append(left, pending[i])
			}
		}
		pending = left
		clock.advance(10 * time.Second)
	}
	require.Empty(t, pending, "everything delivered by the last flush")
	return rows, all
}

func limitRow(t *testing.T, lib *memLibrato, all []Measurement, rows []limitFlush) {
	t.Helper()
	dups := 0
	for i := range all {
		n := lib.stored[keyOf(&all[i])]
		require.Positive(t, n, "%v was not delivered", keyOf(&all[i]))
		dups += n - 1
	}
	require.Zero(t, dups, "duplicates")
	var total int64
	perBatch := make([]string, len(rows))
	for i, r := range rows {
		total += r.requests
		perBatch[i] = fmt.Sprintf("%d/%d", r.requests, r.batches)
	}
	t.Logf("| %s | %d requests (per flush, requests/batches: %v) | %d delivered | 0 dropped | %d duplicated | %d flushes |",
		t.Name(), total, perBatch, len(all), dups, len(rows))
}

// TestLimit413Proxy: a proxy refuses bodies over 12,000 bytes (a batch of
// 300 is about 22,000). The first flush learns the limit from one 413 per
// request in flight; later flushes cut their batches at it from the start:
// two requests per batch of 300, no 413.
func TestLimit413Proxy(t *testing.T) {
	lib := &memLibrato{tooLarge: func(_ int, body []byte) bool { return len(body) > 12_000 }}
	clock := &fakeClock{now: costStart}
	s, rejected := costSender(t, lib, clock)
	rows, all := limitRun(t, s, lib, clock, 30_000, 4)
	require.Zero(t, rejected.Get())
	require.LessOrEqual(t, rows[0].refused, int64(10), "one 413 per request in flight")
	require.LessOrEqual(t, rows[0].requests, 2*rows[0].batches+10)
	for _, r := range rows[1:] {
		require.Zero(t, r.refused, "later flushes are cut at the learned limit")
		require.Equal(t, 2*r.batches, r.requests)
	}
	limitRow(t, lib, all, rows)
}

// TestLimit413Outage: after a healthy flush, a proxy answers 413 to
// everything for three flushes, then is healthy again. During the outage
// each batch costs one request; afterwards batches are full size again.
func TestLimit413Outage(t *testing.T) {
	for _, cold := range []bool{false, true} {
		t.Run(fmt.Sprintf("outage from the first flush=%v", cold), func(t *testing.T) {
			clock := &fakeClock{now: costStart}
			outage := func(k int) bool { return k >= 1 && k <= 3 }
			if cold {
				outage = func(k int) bool { return k <= 2 }
			}
			var flush int
			lib := &memLibrato{tooLarge: func(int, []byte) bool { return outage(flush) }}
			s, rejected := costSender(t, lib, clock)
			var rows []limitFlush
			var all []Measurement
			// limitRun, one flush at a time, to know which flush it is.
			var pending []Measurement
			for flush = 0; flush < 5; flush++ {
				fresh := costWorkload(9_000)
				for i := range fresh {
					fresh[i].Value += float64(flush * 9_000)
				}
				all, pending = append(all, fresh...), append(pending, fresh...)
				req, ref := lib.requests.Load(), lib.refused413.Load()
				res, err := s.Deliver(pending, Endpoint{URL: "https://metrics-api.librato.com/v1/metrics"}, clock.Now())
				rows = append(rows, limitFlush{lib.requests.Load() - req, lib.refused413.Load() - ref, int64((len(pending) + 299) / 300)})
				if err != nil {
					t.Logf("flush %d: %v", flush+1, err)
				}
				left := pending[:0]
				for i := range pending {
					if len(res.Settled) == 0 || !res.Settled[i] {
						left = append(left, pending[i])
					}
				}
				pending = left
				clock.advance(10 * time.Second)
			}
			require.Empty(t, pending)
			require.Zero(t, rejected.Get())
			for k, r := range rows {
				switch {
				case cold && k == 0:
					// Halving until the bodies are too small to be the
					// reason, in each request in flight, then one each:
					// typically batches + 10×12, but how many halvings run
					// before the limit is learnt depends on the order of
					// concurrent answers (216 seen under load). What holds
					// always is the flush's budget of extra requests.
					require.LessOrEqual(t, r.requests, r.batches+ExtraRequests+ExtraRequestsPerBatch*r.batches, "flush %d", k)
				case outage(k):
					require.LessOrEqual(t, r.requests, r.batches, "flush %d: one request per batch", k)
				default:
					require.Equal(t, r.batches, r.requests, "flush %d: full-size batches", k)
				}
			}
			limitRow(t, lib, all, rows)
		})
	}
}

// TestLimitSingle413IsNotProof: a 413 to one measurement keeps it.
func TestLimitSingle413IsNotProof(t *testing.T) {
	lib := &memLibrato{tooLarge: func(int, []byte) bool { return true }}
	clock := &fakeClock{now: costStart}
	s, rejected := costSender(t, lib, clock)
	ms := costWorkload(1)
	res, err := s.Deliver(ms, Endpoint{URL: "https://metrics-api.librato.com/v1/metrics"}, clock.Now())
	require.ErrorContains(t, err, "413")
	require.Equal(t, []bool{false}, res.Settled)
	require.Zero(t, rejected.Get())
	require.Equal(t, int64(1), lib.requests.Load())
}
