package main

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// storedRow is a table row the run must print: name, source or tags, value.
type storedRow struct{ name, series, value string }

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		rows      []storedRow
		absent    []string // names that must not be in the table
		dropped   []string // reasons the Dropped section must give
		summary   string   // regexp for the summary line
		notes     []string // what the lines after the summary must say
		stderrHas []string
	}{
		{
			name: "legacy",
			args: nil,
			rows: []storedRow{
				{"cpu.usage_idle", "web01", "84.25"},
				{"cpu.usage_idle", "web01", "86"}, // the same series ten seconds earlier
				{"mem.total", "db01", "34359738368"},
				{"temperature", "db01", "54.5"},                    // field "value"
				{"service.up", "web01", "1"},                       // bool
				{"net.bytes_recv", "db01", "18446744073709552000"}, // uint64 beyond int64
				{"http_response.ms_count", "web01", "120"},         // no summaries by default
				{"prometheus_kube_deployment_stat…6925a7693e3fc6bd (255 chars)", "web02", "3"},
			},
			absent: []string{"app_requests.rate", "heartbeat.alive", "sensor.", "physics.huge", "uptime.seconds", "service.status"},
			dropped: []string{
				"W! Dropped 2 measurement(s) (invalid_value)",
				"W! Dropped 2 measurement(s) (out_of_range), e.g. physics.huge",
				`W! Dropped 2 measurement(s) (empty_source), e.g. metric "app_requests": template "host" resolved to an empty source`,
				`W! Dropped 1 measurement(s) Librato rejected: "measure_time is too far in the past"; e.g. uptime.seconds (source "web02"`,
				`D! Skipping sensor.reading (source "db01"): value is NaN`,
				`D! Skipping sensor.drift (source "db01"): value is infinite`,
				`D! Skipping physics.tiny (source "db01"): value is below Librato's limit of 1e-130`,
				`D! Skipping string field service.status`,
				"Librato allows 255 characters",
			},
			summary: `^22 metrics in, 49 gauges stored, \d+ requests \(1×200, \d+×400\)$`,
			notes:   []string{"×400: Librato rejects a whole request for one bad measurement, so the plugin split the rejected batch"},
		},
		{
			name: "tagged with summaries",
			args: []string{"-api", "tagged", "-summaries"},
			rows: []storedRow{
				{"cpu.usage_idle", "cpu=cpu-total,host=web01", "84.25"},
				{"disk.free", "device=nvme0n1p1,fstype=ext4,host=db01,path=/var/lib/postgresql", "147102629888"},
				{"app_requests.rate", "env=prod,service=checkout", "130.5"}, // no host, but tags to send
				{"temperature", "host=db01,sensor=cpu", "54.5"},
				{"http_response.ms", "host=web01,path=/api", "count=120 sum=4830.5 min=3.2 max=412.9 stddev=51.7"},
			},
			absent: []string{"heartbeat.alive", "http_response.ms_count", "uptime.seconds"},
			dropped: []string{
				"W! Dropped 2 measurement(s) (invalid_value)",
				`W! Dropped 1 measurement(s) (no_tags), e.g. metric "heartbeat"`,
				`W! Dropped 1 measurement(s) Librato rejected: "time is too far in the past"; e.g. uptime.seconds (tags {"host":"web02"}`,
			},
			summary: `^22 metrics in, 46 measurements stored, \d+ requests \(\d+×202, \d+×400\)$`,
		},
		{
			name: "legacy summaries and default_source from the testdata copy",
			args: []string{"-summaries", "-input", "../../testdata/tryout/metrics.lp", "-toml", `default_source = "unknown"`},
			rows: []storedRow{
				{"app_requests.rate", "unknown", "130.5"},
				{"heartbeat.alive", "unknown", "1"},
			},
			absent:  []string{"http_response.ms_count"},
			dropped: []string{"W! Dropped 2 measurement(s) (invalid_value)"},
			summary: `^22 metrics in, 47 gauges stored, \d+ requests`,
		},
		{
			name:    "auto on an account with tags",
			args:    []string{"-api", "auto"},
			rows:    []storedRow{{"cpu.usage_idle", "cpu=cpu-total,host=web01", "84.25"}},
			summary: `^22 metrics in, \d+ measurements stored, \d+ requests \(\d+×202, \d+×400\)$`,
		},
		{
			name:    "auto on a legacy account",
			args:    []string{"-api", "auto", "-legacy-account"},
			rows:    []storedRow{{"cpu.usage_idle", "web01", "84.25"}, {"mem.total", "db01", "34359738368"}},
			summary: `^22 metrics in, 49 gauges stored, \d+ requests \(1×200, \d+×400, 1×403\)$`,
			notes:   []string{`1×403: the tagged API's "not enabled" answer: api = "auto" sent the flush to the legacy API`},
		},
		{
			name:    "template",
			args:    []string{"-template", "host.cpu"},
			rows:    []storedRow{{"cpu.usage_idle", "web01.cpu-total", "84.25"}, {"mem.total", "db01", "34359738368"}},
			summary: `^22 metrics in, 49 gauges stored`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.NoError(t, run(t.Context(), tt.args, &stdout, &stderr), "stderr:\n%s", stderr.String())
			out := stdout.String()

			table, rest, ok := strings.Cut(out, "\nDropped ")
			require.True(t, ok, "no Dropped section in:\n%s", out)
			for _, r := range tt.rows {
				requireRecent(t, requireRow(t, table, r))
			}
			for _, name := range tt.absent {
				require.NotRegexp(t, `(?m)^`+regexp.QuoteMeta(name), table)
			}
			for _, d := range tt.dropped {
				require.Contains(t, rest, d)
			}
			_, after, ok := strings.Cut(rest, "\n22 metrics in, ")
			require.True(t, ok, "no summary line in:\n%s", rest)
			summary, notes, _ := strings.Cut("22 metrics in, "+after, "\n")
			require.Regexp(t, tt.summary, summary)
			for _, n := range tt.notes {
				require.Contains(t, notes, n)
			}
			for _, s := range tt.stderrHas {
				require.Contains(t, stderr.String(), s)
			}
			// One line per warning: the report lists them, the live log
			// does not repeat them.
			for line := range strings.Lines(rest) {
				if w, ok := strings.CutPrefix(strings.TrimSpace(line), "W! "); ok {
					require.Equal(t, 1, strings.Count(out+stderr.String(), w), "warning printed more than once: %s", w)
				}
			}
		})
	}
}

// requireRow finds the row in the table and returns its time column.
func requireRow(t *testing.T, table string, r storedRow) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.name) + ` +` + regexp.QuoteMeta(r.series) +
		` +` + regexp.QuoteMeta(r.value) + ` +(\S+)$`)
	m := re.FindStringSubmatch(table)
	require.NotNil(t, m, "no row %q in:\n%s", r, table)
	return m[1]
}

// requireRecent checks the timestamp rewrite: the sample dates from 2023,
// what Librato stored must be from the last minutes.
func requireRecent(t *testing.T, rfc3339 string) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, rfc3339)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ts, 5*time.Minute)
}

func TestDebugLogsRequests(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-debug"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "  debug = true\n")
	log := stderr.String()
	require.Regexp(t, `I! \[outputs.librato\] POST http://127\.0\.0\.1:\d+/v1/metrics: \d+ measurements.*\[body 1\]`, log)
	// Bodies are laid out below the line, one measurement per line, not
	// quoted.
	require.Regexp(t, `(?m)^    \[body 1\]\n    \{\n      "gauges": \[\n        \{"name":"`, log)
	require.Contains(t, log, `"params": {"measure_time":["is too far in the past"],"name":"uptime.seconds"}`)
	require.NotContains(t, log, `\"`)
	// The skipped values are in the report, not repeated in the log.
	require.Contains(t, stdout.String(), "D! Skipping sensor.reading")
	require.NotContains(t, log, "Skipping sensor.reading")
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"unknown api", []string{"-api", "v2"}, errUsage},
		{"-toml with a -config file", []string{"-config", "main.go", "-toml", "debug = true"}, errUsage},
		{"-summaries with -serve", []string{"-serve", "127.0.0.1:0", "-summaries"}, errUsage},
		{"unknown flag", []string{"-nope"}, errUsage},
		{"stray argument", []string{"metrics.lp"}, errUsage},
		{"missing input", []string{"-input", "does-not-exist.lp"}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			require.True(t, errors.Is(err, tt.want), "got %v", err)
		})
	}
}

// -config names a file with and without -check: the file's settings are
// tried against the fake, its URL and credentials (here an unset ${VAR})
// replaced.
func TestRunConfigFile(t *testing.T) {
	path := writeFile(t, "[[outputs.librato]]\n  api_user = \"me@example.com\"\n  api_token = \"${LIBRATO_TRYOUT_UNSET}\"\n"+
		"  api = \"tagged\"\n  api_url = \"https://metrics-api.librato.com/v1/measurements\"\n  extra_tags = {env = \"test\"}\n")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-config", path}, &stdout, &stderr), "stderr:\n%s", &stderr)
	out := stdout.String()
	require.Contains(t, out, "Config: "+path+", loaded with Telegraf's own loader")
	require.Contains(t, out, "api_url, api_user and api_token replaced by the fake API's")
	requireRow(t, out, storedRow{"cpu.usage_idle", "cpu=cpu-total,env=test,host=web01", "84.25"})

	// -api given on the command line overrides the file's.
	stdout.Reset()
	require.NoError(t, run(t.Context(), []string{"-config", path, "-api", "legacy"}, &stdout, &stderr))
	requireRow(t, stdout.String(), storedRow{"cpu.usage_idle", "web01", "84.25"})
}

// Before -toml, -config held TOML lines; a value naming no file that holds
// "=" still works, with a note.
func TestRunConfigTOMLLinesStillWork(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-config", `default_source = "unknown"`}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "-config now names a file; taking these TOML lines as -toml")
	requireRow(t, stdout.String(), storedRow{"heartbeat.alive", "unknown", "1"})
}

// Times at or before the Unix epoch are shown as given, and the plugin
// drops them as the agent would (invalid_time), not Librato as too old.
func TestRunKeepsEpochTimes(t *testing.T) {
	input := writeFile(t, "clock,host=h1 v=1 0\nclock,host=h1 v=2 -1\nclock,host=h1 v=3 1700000000000000000\n")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-input", input}, &stdout, &stderr))
	out := stdout.String()
	require.Contains(t, out, "(2 at or before the Unix epoch kept as given)")
	requireRecent(t, requireRow(t, out, storedRow{"clock.v", "h1", "3"}))
	require.Contains(t, out, "Dropped 2 measurement(s) (invalid_time)")
	require.NotContains(t, out, "Librato rejected")
	require.NotContains(t, out, "×400")
	require.Contains(t, out, "3 metrics in, 1 gauges stored, 1 request (1×200)")
}

func TestRunReportsConfigErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-toml", "no_such_option = 1"}, &stdout, &stderr)
	require.ErrorContains(t, err, "no_such_option")
}

// The testdata copy exists for -input examples; it must not drift from the
// embedded sample, or the two demos would tell different stories.
func TestTestdataCopyMatchesSample(t *testing.T) {
	cp, err := os.ReadFile("../../testdata/tryout/metrics.lp")
	require.NoError(t, err)
	require.Equal(t, string(sampleLP), string(cp), "copy cmd/librato-tryout/sample.lp to testdata/tryout/metrics.lp")
}

func TestTOMLString(t *testing.T) {
	require.Equal(t, `"a\"b\\c\u000A"`, tomlString("a\"b\\c\n"))
}
