package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

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
	p := &servePrinter{w: stdout}
	srv, err := fakelibrato.Listen(fakelibrato.Options{
		Addr: o.serve, User: o.user, Token: o.token, MaxPast: maxPast, AllowGzip: true,
		Observe: p.print,
	})
	if err != nil {
		return fmt.Errorf("starting the API: %w", err)
	}
	defer srv.Close()
	p.header(srv, o.user, o.token)
	<-ctx.Done()
	p.footer()
	return nil
}

// servePrinter writes the events of concurrent requests one whole block
// at a time.
type servePrinter struct {
	mu                         sync.Mutex
	w                          io.Writer
	requests, stored, rejected int
}

func (p *servePrinter) header(srv *fakelibrato.Server, user, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, `Librato-compatible API on %s (Ctrl-C to stop). It checks what Librato checks
and prints every measurement it stores and every request it rejects.
Point Telegraf at it with:

[[outputs.librato]]
  api_user = %s
  api_token = %s
  api_url = %q
  ## or, for the tag-based API:
  # api = "tagged"
  # api_url = %q

`, srv.URL(), tomlString(user), tomlString(token), srv.LegacyURL(), srv.TaggedURL())
}

func (p *servePrinter) footer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "Stopped after %d requests: %d measurements stored, %d requests rejected.\n",
		p.requests, p.stored, p.rejected)
}

func (p *servePrinter) print(e fakelibrato.Event) {
	var b strings.Builder
	now := time.Now().Format(time.TimeOnly)
	n := len(e.Gauges) + len(e.Counters) + len(e.Measurements)
	ok := e.Status/100 == 2
	if ok {
		fmt.Fprintf(&b, "%s %s %s -> %d: %d stored\n", now, e.Method, e.Path, e.Status, n)
	} else {
		fmt.Fprintf(&b, "%s %s %s -> %d REJECTED: %s\n", now, e.Method, e.Path, e.Status, rejection(e))
	}
	rows := legacyRows(append(e.Gauges, e.Counters...))
	if len(e.Measurements) > 0 {
		rows = taggedRows(e.Measurements)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		when := time.Unix(r.time, 0).UTC().Format(time.RFC3339)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", elide(r.name), r.series, r.value, when)
	}
	_ = tw.Flush() // into a strings.Builder: cannot fail

	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	p.stored += n
	if !ok {
		p.rejected++
	}
	_, _ = io.WriteString(p.w, b.String()) // a closed stdout is no reason to stop the API
}

// rejection says why a request was refused: Librato's answer, and a hint
// for the answers a misconfigured agent gets.
func rejection(e fakelibrato.Event) string {
	answer := strings.TrimSpace(string(e.Response))
	switch e.Status {
	case 401:
		return answer + " (api_user/api_token do not match the ones printed above)"
	case 404:
		return answer + " (api_url must end in /v1/metrics, or /v1/measurements with api = \"tagged\")"
	}
	return answer
}
