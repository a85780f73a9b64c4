package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
)

// sampleLP is the bundled input. It lives next to the command, not in
// testdata/, because go:embed cannot reach outside the package directory and
// `go run` must work without any file on disk.
//
//go:embed sample.lp
var sampleLP []byte

// loadMetrics reads the input (the bundled sample when path is empty),
// moves its timestamps so the newest point is now, and describes what it
// read for the report.
func loadMetrics(path string, now time.Time) ([]telegraf.Metric, string, error) {
	data, name := sampleLP, "the bundled sample.lp"
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, "", err
		}
		name = path
	}
	metrics, err := parseLineProtocol(data, now)
	if err != nil {
		return nil, "", fmt.Errorf("parsing %s: %w", name, err)
	}
	if len(metrics) == 0 {
		return nil, "", fmt.Errorf("%s holds no metrics", name)
	}
	kept := shiftToNow(metrics, now)
	desc := fmt.Sprintf("%d metrics from %s", len(metrics), name)
	// The non-finite points belong to the sample (its header says so), also
	// when it is passed as testdata/tryout/metrics.lp; on any other file
	// they would be points the user never wrote.
	if bytes.Equal(data, sampleLP) {
		metrics = append(metrics, nonFiniteMetric(now))
		desc += " + 1 built in Go (NaN and +Inf, which line protocol cannot carry)"
	}
	desc += ", timestamps moved so the newest is now"
	if kept > 0 {
		desc += fmt.Sprintf(" (%d at or before the Unix epoch kept as given)", kept)
	}
	return metrics, desc, nil
}

// parseLineProtocol uses Telegraf's own influx parser, so the metrics carry
// exactly the field types (int64, uint64, float64, bool, string) an input
// plugin would produce. Lines without a timestamp get now.
func parseLineProtocol(data []byte, now time.Time) ([]telegraf.Metric, error) {
	p := &influx.Parser{}
	if err := p.Init(); err != nil {
		return nil, err
	}
	p.SetTimeFunc(func() time.Time { return now })
	return p.Parse(data)
}

// shiftToNow moves the metrics by the same amount so the newest is at now.
// Keeping the distances keeps the sample's story intact: points ten seconds
// apart stay apart, and the late arrival stays two hours late. Times at or
// before the Unix epoch (0, -1) stay as given, so the plugin drops them as
// invalid_time as it would in the agent; moved, they would become points
// Librato refuses as too old. It returns how many it kept.
func shiftToNow(metrics []telegraf.Metric, now time.Time) (kept int) {
	var newest time.Time
	for _, m := range metrics {
		if !afterEpoch(m.Time()) {
			kept++
		} else if newest.IsZero() || m.Time().After(newest) {
			newest = m.Time()
		}
	}
	if newest.IsZero() {
		return kept
	}
	shift := now.Sub(newest)
	for _, m := range metrics {
		if afterEpoch(m.Time()) {
			m.SetTime(m.Time().Add(shift))
		}
	}
	return kept
}

// afterEpoch is the plugin's test for a usable metric time: Unix seconds
// after 0.
func afterEpoch(t time.Time) bool { return t.Unix() > 0 }

// nonFiniteMetric is the bad input line protocol cannot express: Telegraf
// plugins still produce NaN and ±Inf (a rate over a zero interval, a ratio
// with a zero denominator), and Librato rejects them.
func nonFiniteMetric(now time.Time) telegraf.Metric {
	return metric.New("sensor",
		map[string]string{"host": "db01"},
		map[string]any{"reading": math.NaN(), "drift": math.Inf(1)},
		now)
}
