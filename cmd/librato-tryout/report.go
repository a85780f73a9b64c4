package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// maxShownLen bounds a name in the table; longer ones (the plugin's limit is
// 255) keep their start and end, which is where shortened names differ.
const maxShownLen = 48

// row is one stored measurement as the table shows it.
type row struct {
	name, series, value string
	time                int64
	// merged: Librato keeps one value per series and second, and this one
	// replaced an earlier value of its series and second.
	merged bool
}

// legacyRows lists what the fake stored for /v1/metrics.
func legacyRows(gauges []fakelibrato.Gauge) []row {
	rows := make([]row, 0, len(gauges))
	for _, g := range gauges {
		rows = append(rows, legacyRow(g))
	}
	return sortRows(rows)
}

func legacyRow(g fakelibrato.Gauge) row {
	value := formatFloat(g.Value)
	if g.Count > 0 {
		value = legacySummary(g)
	}
	return row{name: g.Name, series: g.Source, value: value, time: g.MeasureTime}
}

func legacySummary(g fakelibrato.Gauge) string {
	parts := []string{"count=" + strconv.FormatInt(g.Count, 10), "sum=" + formatFloat(g.Sum)}
	parts = appendStat(parts, "min", g.Min, g.HasMin)
	parts = appendStat(parts, "max", g.Max, g.HasMax)
	parts = appendStat(parts, "sum_squares", g.SumSquares, g.HasSumSquares)
	return strings.Join(parts, " ")
}

// taggedRows lists what the fake stored for /v1/measurements.
func taggedRows(ms []fakelibrato.Measurement) []row {
	rows := make([]row, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, taggedRow(m))
	}
	return sortRows(rows)
}

func taggedRow(m fakelibrato.Measurement) row {
	value := formatFloat(m.Value)
	if m.Count > 0 {
		value = taggedSummary(m)
	}
	return row{name: m.Name, series: formatTags(m.Tags), value: value, time: m.Time}
}

func taggedSummary(m fakelibrato.Measurement) string {
	parts := []string{"count=" + strconv.FormatInt(m.Count, 10), "sum=" + formatFloat(m.Sum)}
	parts = appendStat(parts, "min", m.Min, m.HasMin)
	parts = appendStat(parts, "max", m.Max, m.HasMax)
	parts = appendStat(parts, "stddev", m.StdDev, m.HasStdDev)
	return strings.Join(parts, " ")
}

func appendStat(parts []string, key string, v float64, ok bool) []string {
	if !ok {
		return parts
	}
	return append(parts, key+"="+formatFloat(v))
}

func formatTags(tags map[string]string) string {
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}

// formatFloat prints v as the plugin encodes it (encoding/json's format),
// so the table shows the digits Librato got: 147102629888, not 1.47e+11.
func formatFloat(v float64) string {
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.FormatFloat(v, format, -1, 64)
}

// sortRows orders by name, series and time, so runs are comparable although
// the plugin posts batches concurrently. Rows of one series and second keep
// their arrival order: the last is the value Librato keeps.
func sortRows(rows []row) []row {
	slices.SortStableFunc(rows, func(a, b row) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.series, b.series), cmp.Compare(a.time, b.time))
	})
	return rows
}

// writeTable prints the rows under the header of the API's vocabulary.
func writeTable(w io.Writer, rows []row, tagged bool) {
	header := "NAME\tSOURCE\tVALUE\tMEASURE_TIME"
	if tagged {
		header = "NAME\tTAGS\tVALUE\tTIME"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		when := time.Unix(r.time, 0).UTC().Format(time.RFC3339)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", elide(r.name), r.series, r.value, when)
	}
	tw.Flush()
}

// elide shortens s for display only, saying how long it really is.
func elide(s string) string {
	r := []rune(s)
	if len(r) <= maxShownLen {
		return s
	}
	const tail = 16
	return fmt.Sprintf("%s…%s (%d chars)", string(r[:maxShownLen-tail-1]), string(r[len(r)-tail:]), len(r))
}

// longRun matches what elideLong shortens: a run of characters without
// spaces or quotes, such as a 300-character metric name inside a log line.
var longRun = regexp.MustCompile(fmt.Sprintf(`[^\s"]{%d,}`, maxShownLen+1))

// elideLong shortens the long names in a log message for display.
func elideLong(msg string) string {
	return longRun.ReplaceAllStringFunc(msg, elide)
}

// dropReport is everything the plugin did not send, with its reasons.
type dropReport struct {
	warnings  []logEntry // the plugin's own warnings, one per reason
	skipped   []logEntry // its debug lines naming each skipped value
	shortened []logEntry // its debug lines on shortened names
}

func newDropReport(logs *logCapture) dropReport {
	return dropReport{
		warnings:  logs.warnings(),
		skipped:   logs.debug(skippedPrefix),
		shortened: logs.debug(shortenedPrefix),
	}
}

func (d dropReport) write(w io.Writer) {
	fmt.Fprintln(w, "Dropped (not sent, or rejected by the API), as the plugin logged it:")
	if len(d.warnings)+len(d.skipped) == 0 {
		fmt.Fprintln(w, "  nothing")
	}
	writeEntries(w, "  ", d.warnings)
	writeEntries(w, "     ", d.skipped)
	if len(d.shortened) > 0 {
		fmt.Fprintln(w, "Renamed:")
		writeEntries(w, "  ", d.shortened)
	}
}

func writeEntries(w io.Writer, indent string, entries []logEntry) {
	for _, e := range entries {
		fmt.Fprintf(w, "%s%s %s\n", indent, e.level.Indicator(), elideLong(e.msg))
	}
}
