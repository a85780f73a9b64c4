package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/seed-d22a899f/librato"
	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// Credentials of the -serve endpoint unless -user/-token say otherwise. The
// API is a local fake: they only prove the agent sends what it was given.
const (
	serveUser  = "tryout@example.com"
	serveToken = "tryout-token"
)

// serve runs the Librato-compatible fake API on addr until ctx ends,
// printing every request: the measurements it stored, or why Librato would
// reject it. It is the endpoint to point a real Telegraf at before it talks
// to a Librato account.
func serve(ctx context.Context, o options, stdout io.Writer) error {
	p := newServePrinter(stdout, time.Now)
	srv, err := fakelibrato.Listen(fakelibrato.Options{
		Addr: o.serve, User: o.user, Token: o.token, MaxPast: maxPast, AllowGzip: true,
		TaggedDisabled: o.legacyAccount,
		Observe:        p.print,
	})
	if err != nil {
		return fmt.Errorf("starting the API: %w", err)
	}
	defer srv.Close()
	p.header(srv, o.user, o.token, o.legacyAccount)
	<-ctx.Done()
	p.footer()
	return nil
}

// servePrinter writes the events of concurrent requests one whole block
// at a time. The fake records every arrival; the printer shows what a
// Librato account would keep of them, one value per series and second, so
// that values the plugin warned would collapse are seen collapsing.
type servePrinter struct {
	mu     sync.Mutex
	w      io.Writer
	now    func() time.Time
	series fakelibrato.Series

	requests, rejected, probes int
	arrived, stored, merged    int
}

func newServePrinter(w io.Writer, now func() time.Time) *servePrinter {
	return &servePrinter{w: w, now: now}
}

func (p *servePrinter) header(srv *fakelibrato.Server, user, token string, legacyAccount bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	account := `  ## or, for the tag-based API:
  # api = "tagged"
  # api_url = ` + fmt.Sprintf("%q", srv.TaggedURL()) + `
  ## or, to let the plugin find out which the account takes:
  # api = "auto"
  # api_url = ` + fmt.Sprintf("%q", srv.URL())
	note := ""
	if legacyAccount {
		account = `  ## this account has no tag-based measurements (-legacy-account):
  ## api = "tagged" is refused, api = "auto" falls back to the above
  # api = "auto"
  # api_url = ` + fmt.Sprintf("%q", srv.URL())
		note = "It answers as a Librato account without tag-based measurements (-legacy-account).\n"
	}
	fmt.Fprintf(p.w, `Librato-compatible API on %s (Ctrl-C to stop). It checks what Librato checks
and prints every measurement it stores and every request it rejects. Like
Librato, it keeps one value per metric and source (or tag set) and second:
a later value for the same one replaces the earlier, and is marked "merged".
%sPoint Telegraf at it with:

[[outputs.librato]]
  api_user = %s
  api_token = %s
  api_url = %q
%s

`, srv.URL(), note, tomlString(user), tomlString(token), srv.LegacyURL(), account)
}

func (p *servePrinter) footer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "Stopped after %d requests: %d measurements arrived, %d values stored, "+
		"%d merged into existing values; %d requests rejected; %d -check probes.\n",
		p.requests, p.arrived, p.stored, p.merged, p.rejected, p.probes)
}

func (p *servePrinter) print(e fakelibrato.Event) {
	if isCheckProbe(e) {
		p.printProbe(e)
		return
	}
	// The series state is shared by concurrent requests: the lock is held
	// from marking the merges to writing, so the order of the blocks is
	// the order values were counted in.
	p.mu.Lock()
	defer p.mu.Unlock()
	rows := p.mark(e)
	merged := 0
	for _, r := range rows {
		if r.merged {
			merged++
		}
	}

	var b strings.Builder
	now := p.now().Format(time.TimeOnly)
	switch {
	case e.Status/100 != 2:
		fmt.Fprintf(&b, "%s %s %s -> %d REJECTED: %s\n", now, e.Method, e.Path, e.Status, rejection(e))
	case merged == 0:
		fmt.Fprintf(&b, "%s %s %s -> %d: %d stored\n", now, e.Method, e.Path, e.Status, len(rows))
	default:
		fmt.Fprintf(&b, "%s %s %s -> %d: %d arrived, %d stored, %d merged into existing values (same %s and second: the last one is kept)\n",
			now, e.Method, e.Path, e.Status, len(rows), len(rows)-merged, merged, seriesWords(e))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range sortRows(rows) {
		when := time.Unix(r.time, 0).UTC().Format(time.RFC3339)
		mark := ""
		if r.merged {
			mark = "merged: replaces an earlier value"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", elide(r.name), r.series, r.value, when, mark)
	}
	_ = tw.Flush() // into a strings.Builder: cannot fail

	p.requests++
	p.arrived += len(rows)
	p.stored += len(rows) - merged
	p.merged += merged
	if e.Status/100 != 2 {
		p.rejected++
	}
	_, _ = io.WriteString(p.w, trimLines(b.String())) // a closed stdout is no reason to stop the API
}

// trimLines drops the padding tabwriter leaves before an empty last column.
func trimLines(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	return b.String()
}

// mark lists an event's values in arrival order, each marked if it merged
// into a value already held. Series older than the API accepts are
// forgotten: nothing can merge into them any more.
func (p *servePrinter) mark(e fakelibrato.Event) []row {
	rows := make([]row, 0, len(e.Gauges)+len(e.Counters)+len(e.Measurements))
	for _, g := range append(append([]fakelibrato.Gauge(nil), e.Gauges...), e.Counters...) {
		r := legacyRow(g)
		r.merged = p.series.Add(g.SeriesKey(), g.MeasureTime)
		rows = append(rows, r)
	}
	for _, m := range e.Measurements {
		r := taggedRow(m)
		r.merged = p.series.Add(m.SeriesKey(), m.Time)
		rows = append(rows, r)
	}
	p.series.Forget(p.now().Add(-maxPast).Unix())
	return rows
}

func seriesWords(e fakelibrato.Event) string {
	if len(e.Measurements) > 0 {
		return "name, tags"
	}
	return "name, source"
}

// isCheckProbe tells -check's requests (librato-execd/librato-tryout
// -check) by the User-Agent suffix the check sets: they are empty on
// purpose, and their 400 is the answer the check wants.
func isCheckProbe(e fakelibrato.Event) bool {
	return strings.HasSuffix(e.Header.Get("User-Agent"), librato.CheckUserAgentSuffix)
}

func (p *servePrinter) printProbe(e fakelibrato.Event) {
	var verdict string
	switch {
	case e.Method == http.MethodGet && e.Status == http.StatusOK:
		verdict = "200: the credentials are accepted"
	case e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity:
		verdict = fmt.Sprintf("%d as expected: the token may record", e.Status)
	case delivery.TagsNotEnabled(e.Status, e.Response):
		verdict = "403 as a legacy-only account answers: no tag-based measurements"
	default:
		verdict = fmt.Sprintf("%d: %s", e.Status, rejection(e))
	}
	line := fmt.Sprintf("%s %s %s -> -check probe (stores nothing): %s\n",
		p.now().Format(time.TimeOnly), e.Method, e.Path, verdict)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	p.probes++
	_, _ = io.WriteString(p.w, line) // a closed stdout is no reason to stop the API
}

// rejection says why a request was refused: Librato's answer, and a hint
// for the answers a misconfigured agent gets.
func rejection(e fakelibrato.Event) string {
	answer := strings.TrimSpace(string(e.Response))
	switch e.Status {
	case http.StatusUnauthorized:
		return answer + " (api_user/api_token do not match the ones printed above)"
	case http.StatusNotFound:
		// A proxy may put the API under a prefix (…/api/v1/metrics); this
		// server has none, so the hint names the paths it has.
		return fmt.Sprintf("%s (no API at %s here: this server's API is at /v1/metrics, "+
			"and /v1/measurements for api = \"tagged\", as printed above)", answer, e.Path)
	}
	return answer
}
