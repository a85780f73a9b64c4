// Command librato-tryout shows the Librato output at work without a Librato
// account or network access:
//
//	go run ./cmd/librato-tryout [-api legacy|tagged] [-summaries] [-debug]
//	                            [-template TEMPLATE] [-config 'TOML lines']
//	                            [-input FILE.lp]
//
// It starts a fake Librato API on 127.0.0.1 with random credentials, loads an
// [[outputs.librato]] section pointing at it through Telegraf's own config
// loader, and drives the resulting output the way the Telegraf agent does
// (Init, Connect, AddMetric, Write, Close) with line protocol input: by
// default a bundled sample of three hosts plus deliberately bad points. It
// then prints what the fake stored, what the plugin dropped and why, and how
// many requests it took. The plugin's log goes to stderr.
package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/models"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// maxPast is the fake's time window, Librato's: it rejects points older than
// this.
const maxPast = time.Hour

// errUsage marks bad command lines; the flag package has already printed
// the problem and the usage.
var errUsage = errors.New("usage error")

// runMu serialises runs: Telegraf's logging is process-global, and two runs
// must not see each other's log lines.
var runMu sync.Mutex

func main() {
	if wantsCheck(os.Args[1:]) {
		os.Exit(runCheck(os.Args[1:], os.Stdout, os.Stderr))
	}
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "librato-tryout:", err)
		os.Exit(1)
	}
}

type options struct {
	input, api, template, extra string
	summaries, debug            bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("librato-tryout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.input, "input", "", "line protocol `file` to send (default: the bundled sample.lp plus a NaN/Inf metric)")
	fs.StringVar(&o.api, "api", "legacy", "Librato API: legacy (sources, /v1/metrics) or tagged (tags, /v1/measurements)")
	fs.StringVar(&o.template, "template", "", "source `template` over the metric's tags (plugin default: \"host\")")
	fs.StringVar(&o.extra, "config", "", "extra `TOML` lines for [[outputs.librato]], e.g. 'default_source = \"unknown\"'")
	fs.BoolVar(&o.summaries, "summaries", false, "send basicstats-style _count/_sum fields as Librato summaries")
	fs.BoolVar(&o.debug, "debug", false, "log every request and the plugin's debug lines to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return o, errUsage
	}
	if o.api != "legacy" && o.api != "tagged" {
		fmt.Fprintf(stderr, "-api must be legacy or tagged, got %q\n", o.api)
		return o, errUsage
	}
	return o, nil
}

// run is the whole command; main only maps its error to an exit code, so
// tests run it in-process.
func run(args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	runMu.Lock()
	defer runMu.Unlock()

	metrics, inputDesc, err := loadMetrics(opts.input, time.Now())
	if err != nil {
		return err
	}
	logs, err := captureLogs(stderr, logLevel(opts.debug))
	if err != nil {
		return err
	}
	defer logs.stop()

	// Fresh credentials every run: the fake checks them like Librato, so a
	// run that got through proves the plugin sent what it was configured with.
	user, token := "tryout-"+strings.ToLower(rand.Text()[:8])+"@example.com", rand.Text()
	srv := fakelibrato.New(fakelibrato.Options{User: user, Token: token, MaxPast: maxPast})
	defer srv.Close()

	tagged := opts.api == "tagged"
	toml := configTOML(pluginSettings{
		url: endpoint(srv, tagged), user: user, token: token, api: opts.api,
		template: opts.template, summaries: opts.summaries, debug: opts.debug, extra: opts.extra,
	})
	fmt.Fprintf(stdout, "Input: %s.\n", inputDesc)
	fmt.Fprintf(stdout, "Fake Librato API on %s. Config, loaded with Telegraf's own loader:\n\n%s\n", srv.URL(), indent(toml))
	ro, err := loadOutput(toml)
	if err != nil {
		return err
	}
	writeErr := deliver(ro, metrics)

	writeReport(stdout, srv, logs, metrics, tagged)
	if writeErr != nil {
		return fmt.Errorf("write failed, Telegraf would keep the metrics and retry: %w", writeErr)
	}
	return nil
}

func logLevel(debug bool) telegraf.LogLevel {
	if debug {
		return telegraf.Debug
	}
	return telegraf.Info // the agent's default
}

func endpoint(srv *fakelibrato.Server, tagged bool) string {
	if tagged {
		return srv.TaggedURL()
	}
	return srv.LegacyURL()
}

// deliver drives the output as the agent does: Init and Connect at startup,
// AddMetric as metrics arrive, Write on flush, Close at shutdown. AddMetric
// copies, so the caller's metrics stay intact for the report.
func deliver(ro *models.RunningOutput, metrics []telegraf.Metric) error {
	if err := ro.Init(); err != nil {
		return fmt.Errorf("initialising outputs.librato: %w", err)
	}
	if err := ro.Connect(); err != nil {
		return fmt.Errorf("connecting outputs.librato: %w", err)
	}
	defer ro.Close()
	for _, m := range metrics {
		ro.AddMetric(m)
	}
	return ro.Write()
}

func writeReport(w io.Writer, srv *fakelibrato.Server, logs *logCapture, metrics []telegraf.Metric, tagged bool) {
	rows, stored, path := legacyRows(srv.Gauges()), "gauges", "/v1/metrics"
	if tagged {
		rows, stored, path = taggedRows(srv.Measurements()), "measurements", "/v1/measurements"
	}
	fmt.Fprintf(w, "Stored by the fake Librato API (POST %s):\n\n", path)
	writeTable(w, rows, tagged)
	fmt.Fprintln(w)
	newDropReport(logs).write(w)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%d metrics in, %d %s stored, %s\n", len(metrics), len(rows), stored, requestSummary(srv.Requests()))
}

// requestSummary counts requests by status, e.g. "3 requests (1×200, 2×400)":
// rejected requests are how the plugin finds the points Librato refuses.
func requestSummary(reqs []fakelibrato.Request) string {
	counts := map[int]int{}
	for _, r := range reqs {
		counts[r.Status]++
	}
	var parts []string
	for _, status := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d×%d", counts[status], status))
	}
	noun := "requests"
	if len(reqs) == 1 {
		noun = "request"
	}
	return fmt.Sprintf("%d %s (%s)", len(reqs), noun, strings.Join(parts, ", "))
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString("    " + line)
	}
	return b.String()
}
