package librato

import (
	"math"
	"strings"

	"github.com/influxdata/telegraf"
)

// appendSummaries turns each group of fields "<p>count" and "<p>sum" (with
// optional "<p>min", "<p>max", "<p>stdev", "<p>sum_squares", where <p> is ""
// or "x_", as aggregators.basicstats emits them) into one Librato summary
// named after the measurement, or "measurement.x". The fields of a group are
// marked in c.used so they do not also become gauges.
func (c *converter) appendSummaries(m telegraf.Metric, fields []*telegraf.Field, s *series, t int64) {
	names := c.names.fields(m.Name())
	for i, f := range fields {
		prefix, ok := strings.CutSuffix(f.Key, "count")
		if !ok || prefix != "" && !strings.HasSuffix(prefix, "_") {
			continue
		}
		sumIdx := fieldIndex(fields, prefix, "sum")
		if sumIdx < 0 {
			continue
		}
		c.used[i], c.used[sumIdx] = true, true
		name := strings.TrimSuffix(prefix, "_")
		if name == "" {
			name = "value"
		}
		var ln libratoName
		ln, names = c.nameFor(names, m.Name(), name)
		if name = ln.text; name == "" {
			c.dropPoint(name, s, reasonEmptyName, "the metric has no name (Librato requires one)")
			continue
		}
		var sm summary
		if problem := c.fillSummary(&sm, fields, prefix, f.Value, fields[sumIdx].Value); problem != "" {
			reason := reasonInvalidValue
			if sm.Count == 0 {
				reason = reasonZeroCount
			}
			c.dropPoint(name, s, reason, problem)
			continue
		}
		// A pointer into c.sums stays valid when append moves it: the old
		// array lives on, unchanged, as long as points refer to it.
		c.sums = append(c.sums, sm)
		c.points = append(c.points, point{Name: name, NameHash: ln.hash, Series: s, Time: t, Summary: &c.sums[len(c.sums)-1]})
	}
}

func fieldIndex(fields []*telegraf.Field, prefix, stat string) int {
	for i, f := range fields {
		if len(f.Key) == len(prefix)+len(stat) && strings.HasPrefix(f.Key, prefix) && strings.HasSuffix(f.Key, stat) {
			return i
		}
	}
	return -1
}

// fillSummary reads the optional statistics of a group and checks that
// Librato will take the result; it returns the problem if not.
func (c *converter) fillSummary(sm *summary, fields []*telegraf.Field, prefix string, count, sum any) string {
	n, ok := toFloat(count)
	if !ok || n != math.Trunc(n) || n < 0 || n > math.MaxInt64/2 {
		return "summary count is not a whole number"
	}
	if n == 0 {
		return "summary count is 0, which Librato rejects"
	}
	sm.Count = int64(n)
	var problem string
	if sm.Sum, problem = c.statValue(sum); problem != "" {
		return "summary sum: " + problem
	}
	optional := []struct {
		stat string
		dst  *float64
		has  *bool
	}{
		{"min", &sm.Min, &sm.HasMin},
		{"max", &sm.Max, &sm.HasMax},
		{"stdev", &sm.Std, &sm.HasStd},
		{"sum_squares", &sm.SumSquares, &sm.HasSumSq},
	}
	for _, o := range optional {
		idx := fieldIndex(fields, prefix, o.stat)
		if idx < 0 {
			continue
		}
		c.used[idx] = true
		if *o.dst, problem = c.statValue(fields[idx].Value); problem != "" {
			return "summary " + o.stat + ": " + problem
		}
		*o.has = true
	}
	deriveSpread(sm)
	return ""
}

func (*converter) statValue(v any) (float64, string) {
	f, ok := toFloat(v)
	if !ok {
		return 0, "not a number"
	}
	if _, problem := valueProblem(f); problem != "" {
		return 0, problem
	}
	return f, ""
}

// deriveSpread fills whichever of sum_squares (legacy API) and stddev (tagged
// API) is missing from the other. basicstats' stdev is the sample standard
// deviation, so Σx² = s²·(n-1) + sum²/n.
func deriveSpread(sm *summary) {
	n := float64(sm.Count)
	switch {
	case sm.HasStd && !sm.HasSumSq:
		sm.SumSquares = sm.Std*sm.Std*(n-1) + sm.Sum*sm.Sum/n
		sm.HasSumSq = valueOK(sm.SumSquares)
	case sm.HasSumSq && !sm.HasStd && n > 1:
		variance := (sm.SumSquares - sm.Sum*sm.Sum/n) / (n - 1)
		sm.Std = math.Sqrt(math.Max(variance, 0))
		sm.HasStd = valueOK(sm.Std)
	}
}

func valueOK(v float64) bool {
	_, problem := valueProblem(v)
	return problem == ""
}
