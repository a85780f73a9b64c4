// Command librato-tryout shows the Librato output at work without a Librato
// account or network access:
//
//	go run ./cmd/librato-tryout [-api legacy|tagged|auto] [-legacy-account]
//	                            [-summaries] [-debug] [-template TEMPLATE]
//	                            [-config FILE | -toml 'TOML lines']
//	                            [-input FILE.lp]
//	go run ./cmd/librato-tryout -serve 127.0.0.1:8085 [-user U] [-token T] [-legacy-account]
//	go run ./cmd/librato-tryout -check -config FILE
//
// It starts a fake Librato API on 127.0.0.1 with random credentials, loads an
// [[outputs.librato]] section pointing at it through Telegraf's own config
// loader, and drives the resulting output the way the Telegraf agent does
// (Init, Connect, AddMetric, Write, Close) with line protocol input: by
// default a bundled sample of three hosts plus deliberately bad points. It
// then prints what the fake stored, what the plugin dropped and why, and how
// many requests it took. The plugin's log goes to stderr.
//
// With -serve it only runs the fake API on that address, printing every
// measurement it stores and every request it rejects, until interrupted:
// a local endpoint to point a real Telegraf at.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"

	"github.com/seed-d22a899f/librato"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
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
	// configFile is -config: an [[outputs.librato]] file, as with -check.
	configFile         string
	apiSet             bool // -api was given, so it overrides configFile's api
	summaries, debug   bool
	legacyAccount      bool
	serve, user, token string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("librato-tryout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.input, "input", "", "line protocol `file` to send (default: the bundled sample.lp plus a NaN/Inf metric)")
	fs.StringVar(&o.api, "api", "legacy",
		"Librato API: legacy (sources, /v1/metrics), tagged (tags, /v1/measurements) or auto (tags unless the account has none)")
	fs.BoolVar(&o.legacyAccount, "legacy-account", false,
		"the fake account has no tag-based measurements, as older Librato accounts: -api auto falls back to legacy (also with -serve)")
	fs.StringVar(&o.template, "template", "", "source `template` over the metric's tags (plugin default: \"host\")")
	fs.StringVar(&o.configFile, "config", "", "an [[outputs.librato]] `file`, as for -check: its settings are tried with api_url, api_user\n"+
		"and api_token replaced by the fake API's (flags given override it). For compatibility, a value that\n"+
		"names no file and holds '=' is taken as -toml lines, with a note")
	fs.StringVar(&o.extra, "toml", "", "extra `TOML` lines for [[outputs.librato]], e.g. 'default_source = \"unknown\"'")
	fs.BoolVar(&o.summaries, "summaries", false, "send basicstats-style _count/_sum fields as Librato summaries")
	fs.BoolVar(&o.debug, "debug", false, "log every request and the plugin's debug lines to stderr")
	fs.Bool("check", false, "with -config FILE: check that file's credentials and settings against Librato, print one line and exit")
	fs.StringVar(&o.serve, "serve", "", "only run the Librato-compatible API on `ADDR` (e.g. 127.0.0.1:8085) for a real Telegraf, printing what it stores")
	fs.StringVar(&o.user, "user", serveUser, "with -serve: the api_user the API accepts")
	fs.StringVar(&o.token, "token", serveToken, "with -serve: the api_token the API accepts")
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
	if err := checkModeFlags(fs, o.serve != ""); err != nil {
		fmt.Fprintln(stderr, err)
		return o, errUsage
	}
	if o.api != "legacy" && o.api != "tagged" && o.api != "auto" {
		fmt.Fprintf(stderr, "-api must be legacy, tagged or auto, got %q\n", o.api)
		return o, errUsage
	}
	fs.Visit(func(f *flag.Flag) { o.apiSet = o.apiSet || f.Name == "api" })
	if err := o.configMeaning(stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return o, errUsage
	}
	return o, nil
}

// configMeaning settles -config. It names a file, as with -check; before
// -toml existed it held TOML lines, and a value that names no file but
// holds "=" can only be that, so it is still taken as such.
func (o *options) configMeaning(stderr io.Writer) error {
	if o.configFile == "" {
		return nil
	}
	if _, err := os.Stat(o.configFile); err != nil && strings.Contains(o.configFile, "=") {
		if o.extra != "" {
			return errors.New("-config names no file and -toml is given too: put the TOML lines in -toml")
		}
		fmt.Fprintln(stderr, "librato-tryout: note: -config now names a file; taking these TOML lines as -toml")
		o.extra, o.configFile = o.configFile, ""
		return nil
	}
	if o.extra != "" {
		return errors.New("-toml and -config FILE exclude each other: add the lines to the file")
	}
	return nil
}

// checkModeFlags refuses flags of the other mode: -serve only serves, the
// try-out only drives the plugin.
func checkModeFlags(fs *flag.FlagSet, serving bool) error {
	serveOnly := map[string]bool{"user": true, "token": true}
	// Both modes answer as a legacy-only account with -legacy-account.
	either := map[string]bool{"serve": true, "legacy-account": true}
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		if !either[f.Name] && serveOnly[f.Name] != serving {
			wrong = append(wrong, "-"+f.Name)
		}
	})
	switch {
	case len(wrong) == 0:
		return nil
	case serving:
		return fmt.Errorf("%s: not used with -serve (configure the Telegraf that sends to it instead)", strings.Join(wrong, ", "))
	default:
		return fmt.Errorf("%s: only used with -serve", strings.Join(wrong, ", "))
	}
}

// run is the whole command; main only maps its error to an exit code, so
// tests run it in-process. ctx ends -serve.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if opts.serve != "" {
		return serve(ctx, opts, stdout)
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
	srv := fakelibrato.New(fakelibrato.Options{User: user, Token: token, MaxPast: maxPast, TaggedDisabled: opts.legacyAccount})
	defer srv.Close()

	fmt.Fprintf(stdout, "Input: %s.\n", inputDesc)
	account := "takes tag-based measurements"
	if opts.legacyAccount {
		account = "has no tag-based measurements (-legacy-account)"
	}
	ro, api, err := buildOutput(stdout, opts, srv, user, token, account)
	if err != nil {
		return err
	}
	writeErr := deliver(ro, metrics)

	writeReport(stdout, srv, logs, metrics, storedAPI(srv, api), api == "auto")
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

// endpoint is the fake's URL for the API: api = "auto" takes the root.
func endpoint(srv *fakelibrato.Server, api string) string {
	switch api {
	case "tagged":
		return srv.TaggedURL()
	case "auto":
		return srv.URL()
	}
	return srv.LegacyURL()
}

// buildOutput loads the [[outputs.librato]] section the run tries, from the
// flags or from -config's file pointed at the fake, prints it, and returns
// it with its api.
func buildOutput(stdout io.Writer, opts options, srv *fakelibrato.Server, user, token, account string) (*models.RunningOutput, string, error) {
	if opts.configFile == "" {
		toml := configTOML(pluginSettings{
			url: endpoint(srv, opts.api), user: user, token: token, api: opts.api,
			template: opts.template, summaries: opts.summaries, debug: opts.debug, extra: opts.extra,
		})
		fmt.Fprintf(stdout, "Fake Librato API on %s; the account %s. Config, loaded with Telegraf's own loader:\n\n%s\n",
			srv.URL(), account, indent(toml))
		ro, err := loadOutput(toml)
		return ro, opts.api, err
	}
	data, err := os.ReadFile(opts.configFile)
	if err != nil {
		return nil, "", fmt.Errorf("reading config: %w", err)
	}
	ro, err := loadOutput(string(data))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", opts.configFile, err)
	}
	api, err := pointAtFake(ro, opts, srv, user, token)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", opts.configFile, err)
	}
	fmt.Fprintf(stdout, "Fake Librato API on %s; the account %s. Config: %s, loaded with Telegraf's own loader,\n"+
		"with api = %q, and api_url, api_user and api_token replaced by the fake API's.\n\n", srv.URL(), account, opts.configFile, api)
	return ro, api, nil
}

// pointAtFake turns a user's [[outputs.librato]] to the fake API and applies
// the flags that were given; it returns the api the output will use.
func pointAtFake(ro *models.RunningOutput, opts options, srv *fakelibrato.Server, user, token string) (string, error) {
	l, ok := ro.Output.(*librato.Librato)
	if !ok {
		return "", fmt.Errorf("the output is %T, not this Librato plugin", ro.Output)
	}
	if opts.apiSet || l.API == "" {
		l.API = opts.api
	}
	if opts.template != "" {
		l.Template, l.SourceTag = opts.template, ""
	}
	l.Summaries = l.Summaries || opts.summaries
	l.Debug = l.Debug || opts.debug
	l.APIURL = endpoint(srv, l.API)
	// The file's credentials (maybe ${VAR}s never set here) are not used.
	l.APIUser.Destroy()
	l.APIToken.Destroy()
	l.APIUser = config.NewSecret([]byte(user))
	l.APIToken = config.NewSecret([]byte(token))
	return l.API, nil
}

// storedAPI is the API whose table to show: api = "auto" wrote to the
// one the fake account takes.
func storedAPI(srv *fakelibrato.Server, api string) bool {
	if api != "auto" {
		return api == "tagged"
	}
	return len(srv.Gauges()) == 0
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

func writeReport(w io.Writer, srv *fakelibrato.Server, logs *logCapture, metrics []telegraf.Metric, tagged, auto bool) {
	rows, stored, path := legacyRows(srv.Gauges()), "gauges", "/v1/metrics"
	if tagged {
		rows, stored, path = taggedRows(srv.Measurements()), "measurements", "/v1/measurements"
	}
	fmt.Fprintf(w, "Stored by the fake Librato API (POST %s):\n\n", path)
	writeTable(w, rows, tagged)
	fmt.Fprintln(w)
	newDropReport(logs).write(w)
	fmt.Fprintln(w)
	counts := statusCounts(srv.Requests())
	fmt.Fprintf(w, "%d metrics in, %d %s stored, %s\n", len(metrics), len(rows), stored, requestSummary(counts))
	for _, note := range statusNotes(counts, auto) {
		fmt.Fprintln(w, "  "+note)
	}
}

func statusCounts(reqs []fakelibrato.Request) map[int]int {
	counts := map[int]int{}
	for _, r := range reqs {
		counts[r.Status]++
	}
	return counts
}

// requestSummary counts requests by status, e.g. "3 requests (1×200, 2×400)".
func requestSummary(counts map[int]int) string {
	total := 0
	var parts []string
	for _, status := range slices.Sorted(maps.Keys(counts)) {
		total += counts[status]
		parts = append(parts, fmt.Sprintf("%d×%d", counts[status], status))
	}
	noun := "requests"
	if total == 1 {
		noun = "request"
	}
	return fmt.Sprintf("%d %s (%s)", total, noun, strings.Join(parts, ", "))
}

// statusNotes explains the summary's answers other than success: a
// rejected request is how the plugin finds the points Librato refuses, and
// with api = "auto" a 403 is how it learns the account has no tags.
func statusNotes(counts map[int]int, auto bool) []string {
	var notes []string
	for _, status := range slices.Sorted(maps.Keys(counts)) {
		var what string
		switch {
		case status/100 == 2:
			continue
		case status == 400 || status == 422:
			what = "Librato rejects a whole request for one bad measurement, so the plugin split the rejected batch\n" +
				"    to find the measurement(s) Librato refuses, dropped only those (see Dropped above) and delivered the rest"
		case status == 429 || status/100 == 5:
			what = "answers the plugin retried"
		case status == 403 && auto:
			what = `the tagged API's "not enabled" answer: api = "auto" sent the flush to the legacy API`
		case status == 0:
			what = "requests that got no answer; the plugin retried them"
		default:
			what = "answers that failed the flush (see the error)"
		}
		notes = append(notes, fmt.Sprintf("%d×%d: %s.", counts[status], status, what))
	}
	return notes
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString("    " + line)
	}
	return b.String()
}
