package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// fixedNow is the printer's clock in these tests: no dependence on the date.
var fixedNow = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

// Six disk.free values with source "vm" and the same second are one value
// in Librato: -serve says so, marks the five that replaced an earlier one,
// and counts across requests.
func TestServePrinterMergesAsLibrato(t *testing.T) {
	var out bytes.Buffer
	p := newServePrinter(&out, fixedClock)
	at := fixedNow.Unix()
	first := fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/metrics", Status: 200}}
	for i := range 6 {
		first.Gauges = append(first.Gauges, fakelibrato.Gauge{Name: "disk.free", Source: "vm", Value: float64(i), MeasureTime: at})
	}
	first.Gauges = append(first.Gauges, fakelibrato.Gauge{Name: "disk.free", Source: "web01", Value: 7, MeasureTime: at})
	p.print(first)
	// Sources are case-insensitive; a later second is a new value.
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/metrics", Status: 200},
		Gauges: []fakelibrato.Gauge{
			{Name: "disk.free", Source: "VM", Value: 9, MeasureTime: at},
			{Name: "disk.free", Source: "vm", Value: 10, MeasureTime: at + 1},
		}})
	p.footer()

	got := out.String()
	require.Contains(t, got, "10:00:00 POST /v1/metrics -> 200: 7 arrived, 2 stored, 5 merged into existing values "+
		"(same name, source and second: the last one is kept)\n")
	require.Contains(t, got, "  disk.free  vm     0  2026-05-04T10:00:00Z\n")
	require.Contains(t, got, "  disk.free  vm     5  2026-05-04T10:00:00Z  merged: replaces an earlier value\n")
	require.Equal(t, 5+1, strings.Count(got, "merged: replaces an earlier value"))
	require.Contains(t, got, "-> 200: 2 arrived, 1 stored, 1 merged into existing values")
	require.Contains(t, got, "Stopped after 2 requests: 9 measurements arrived, 3 values stored, "+
		"6 merged into existing values; 0 requests rejected; 0 -check probes.\n")
}

// Tagged values merge by name, tag set and second; another tag set is
// another series.
func TestServePrinterMergesTagged(t *testing.T) {
	var out bytes.Buffer
	p := newServePrinter(&out, fixedClock)
	at := fixedNow.Unix()
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/measurements", Status: 202},
		Measurements: []fakelibrato.Measurement{
			{Name: "cpu", Tags: map[string]string{"host": "a", "cpu": "0"}, Value: 1, Time: at},
			{Name: "cpu", Tags: map[string]string{"cpu": "0", "host": "a"}, Value: 2, Time: at},
			{Name: "cpu", Tags: map[string]string{"host": "a", "cpu": "1"}, Value: 3, Time: at},
		}})
	require.Contains(t, out.String(), "-> 202: 3 arrived, 2 stored, 1 merged into existing values (same name, tags and second: the last one is kept)")
	require.Contains(t, out.String(), "  cpu  cpu=0,host=a  2  2026-05-04T10:00:00Z  merged: replaces an earlier value\n")
}

// Series older than the API accepts are forgotten, so a long -serve run
// does not hold every second it saw.
func TestServePrinterForgetsOldSeries(t *testing.T) {
	now := fixedNow
	p := newServePrinter(&bytes.Buffer{}, func() time.Time { return now })
	ev := fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/metrics", Status: 200},
		Gauges: []fakelibrato.Gauge{{Name: "a", Source: "s", Value: 1, MeasureTime: now.Unix()}}}
	p.print(ev)
	require.Equal(t, 1, p.series.Len())
	now = now.Add(maxPast + time.Minute)
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/metrics", Status: 200}})
	require.Zero(t, p.series.Len())
}

// -check's requests are probes: their 400 is what the check wants, and
// -serve says so instead of REJECTED.
func TestServePrinterCheckProbes(t *testing.T) {
	var out bytes.Buffer
	p := newServePrinter(&out, fixedClock)
	ua := http.Header{"User-Agent": {"telegraf-output-librato/v0.0.0" + librato.CheckUserAgentSuffix}}
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "GET", Path: "/v1/metrics", Status: 200, Header: ua}})
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/measurements", Status: 400, Header: ua,
		Response: []byte(`{"errors":{"params":{"measurements":["is empty"]}}}`)}})
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/measurements", Status: 403, Header: ua,
		Response: []byte(`{"errors":{"request":["Tag based measurements are not enabled for this account"]}}`)}})
	// The same 400 without the check's User-Agent is a rejected flush.
	p.print(fakelibrato.Event{Request: fakelibrato.Request{Method: "POST", Path: "/v1/metrics", Status: 400,
		Header: http.Header{"User-Agent": {"telegraf-output-librato/v0.0.0"}}, Response: []byte(`{"errors":{}}`)}})
	p.footer()
	got := out.String()
	require.Contains(t, got, "GET /v1/metrics -> -check probe (stores nothing): 200: the credentials are accepted\n")
	require.Contains(t, got, "POST /v1/measurements -> -check probe (stores nothing): 400 as expected: the token may record\n")
	require.Contains(t, got, "POST /v1/measurements -> -check probe (stores nothing): "+
		"403 as a legacy-only account answers: no tag-based measurements\n")
	require.Contains(t, got, "POST /v1/metrics -> 400 REJECTED: ")
	require.Contains(t, got, "Stopped after 4 requests: 0 measurements arrived, 0 values stored, "+
		"0 merged into existing values; 1 requests rejected; 3 -check probes.")
}

// With a proxy's path prefix in api_url, the 404 hint names the path the
// request went to and the paths this server has, instead of claiming the
// URL does not end in /v1/metrics.
func TestServeRejection404NamesThePath(t *testing.T) {
	got := rejection(fakelibrato.Event{Request: fakelibrato.Request{Path: "/api/v1/metrics", Status: 404, Response: []byte(`{"errors":"not found"}`)}})
	require.Contains(t, got, "no API at /api/v1/metrics here: this server's API is at /v1/metrics, and /v1/measurements for api = \"tagged\"")
	require.NotContains(t, got, "must end in")
}

// startServe runs -serve with args in the background until the test ends
// and returns its address and output.
func startServe(t *testing.T, args ...string) (string, *lockedBuffer, func() string) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	stdout := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-serve", addr}, args...), stdout, stdout) }()
	t.Cleanup(cancel)
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "api_url = ") }, 10*time.Second, 10*time.Millisecond)
	return addr, stdout, func() string {
		cancel()
		require.NoError(t, <-done)
		return stdout.String()
	}
}

// -serve -legacy-account answers as an account without tags: the plugin
// with api = "auto" falls back to the legacy API, and -serve shows it.
func TestServeLegacyAccount(t *testing.T) {
	addr, stdout, stop := startServe(t, "-legacy-account")
	require.Contains(t, stdout.String(), "without tag-based measurements (-legacy-account)")
	ro, err := loadOutput(configTOML(pluginSettings{url: "http://" + addr, user: serveUser, token: serveToken, api: "auto"}))
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second) // the API refuses times far from its own clock
	require.NoError(t, deliver(ro, []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "web01"}, map[string]any{"usage_idle": 98.5}, now),
	}))
	out := stop()
	require.Contains(t, out, "POST /v1/measurements -> 403 REJECTED: ")
	require.Regexp(t, `POST /v1/metrics -> 200: 1 stored\n  cpu\.usage_idle  web01  98\.5`, out)
}

// -check against -serve: its requests are shown as probes, none REJECTED.
func TestServeShowsCheckAsProbes(t *testing.T) {
	addr, _, stop := startServe(t, "-legacy-account")
	conf := filepath.Join(t.TempDir(), "librato.conf")
	require.NoError(t, os.WriteFile(conf, []byte(configTOML(pluginSettings{
		url: "http://" + addr, user: serveUser, token: serveToken, api: "auto"})), 0o600))
	var checkOut, checkErr bytes.Buffer
	require.Equal(t, exitOK, runCheck([]string{"-check", "-config", conf}, &checkOut, &checkErr), checkErr.String())
	require.Contains(t, checkOut.String(), "OK")
	out := stop()
	require.NotContains(t, out, "REJECTED")
	require.Contains(t, out, "POST /v1/measurements -> -check probe (stores nothing): 403 as a legacy-only account answers")
	require.Contains(t, out, "POST /v1/metrics -> -check probe (stores nothing): 400 as expected")
}
