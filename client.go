package librato

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/common/tls"
)

const (
	modulePath = "github.com/seed-d22a899f/librato"
	// maxResponseRead bounds what is read of any response body: enough for
	// Librato's error JSON, small enough that a huge error page costs nothing.
	maxResponseRead = 16 << 10
)

type senderConfig struct {
	endpoints              endpoints
	user, token            *config.Secret
	timeout, retryBudget   time.Duration
	measurementsPerRequest int
	concurrency            int
	gzip                   bool
	debug                  bool
	maxRetryAfter          time.Duration
	tls                    *tls.ClientConfig
	proxy                  *proxy.HTTPProxy
	// transport, when set, replaces the HTTP transport: the simulation
	// puts its in-memory Librato there.
	transport http.RoundTripper
}

// sender owns the HTTP client and everything shared by the requests of all
// flushes: the rate-limit gate, the pooled request buffers, and whether the
// endpoint has ever accepted a request (which proof of a rejection needs).
type sender struct {
	cfg       senderConfig
	log       telegraf.Logger
	stats     *stats
	userAgent []string
	clock     clock

	client    *http.Client
	gate      rateGate
	accepted  atomic.Bool
	clampOnce sync.Once
	pace      pacer
	committed atomic.Int64 // requests in flight or holding a pacing slot
	bufs      sync.Pool    // *payload
	gzips     sync.Pool    // *gzip.Writer

	// flushAccepted: a request of the last deliver was accepted by its
	// endpoint, the only evidence api = "auto" may learn from.
	flushAccepted bool
}

func newSender(cfg senderConfig, st *stats, log telegraf.Logger) *sender {
	s := &sender{cfg: cfg, log: log, stats: st, userAgent: []string{userAgent()}, clock: realClock{}}
	s.bufs.New = func() any { return &payload{pool: &s.bufs} }
	s.gate = rateGate{clock: s.clock, maxPause: cfg.maxRetryAfter, onClamp: s.logClampedPause}
	s.pace = pacer{maxReset: cfg.maxRetryAfter}
	return s
}

// logClampedPause warns once per process: a proxy that always sends an
// absurd Retry-After must not fill the log.
func (s *sender) logClampedPause(hint, pause time.Duration) {
	s.clampOnce.Do(func() {
		s.log.Warnf("Librato asked to pause for %s; pausing for max_retry_after (%s) instead, "+
			"then one request tests whether sending is allowed again (logged once)", hint.Round(time.Second), pause)
	})
}

func userAgent() string {
	info, _ := debug.ReadBuildInfo() // nil when there is none
	return "telegraf-output-librato/" + moduleVersion(info)
}

func (s *sender) connect() error {
	tlsConfig, err := s.cfg.tls.TLSConfig()
	if err != nil {
		return fmt.Errorf("invalid TLS settings: %w", err)
	}
	proxyFunc, err := s.cfg.proxy.Proxy()
	if err != nil {
		return fmt.Errorf("invalid proxy settings: %w", err)
	}
	if proxyFunc == nil {
		proxyFunc = http.ProxyFromEnvironment // as the built-in plugin does
	}
	transport := &http.Transport{
		Proxy:                 proxyFunc,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          s.cfg.concurrency,
		MaxIdleConnsPerHost:   s.cfg.concurrency,
		WriteBufferSize:       64 << 10, // a whole request body in one write
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   s.cfg.timeout,
		ResponseHeaderTimeout: s.cfg.timeout,
	}
	s.close() // a new client must not leave the old one's connections open
	var rt http.RoundTripper = transport
	if s.cfg.transport != nil {
		rt = s.cfg.transport
	}
	s.client = &http.Client{Transport: rt, Timeout: s.cfg.timeout, CheckRedirect: neverFollow}
	return nil
}

// neverFollow hands a redirect back as the answer: following it would turn
// the POST into a bodyless GET and could take the credentials elsewhere.
func neverFollow(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// close closes the client's connections and forgets it. No request is in
// flight (Librato serialises Write and Close), so every connection is idle.
func (s *sender) close() {
	if s.client != nil {
		s.client.CloseIdleConnections()
		s.client = nil
	}
}

func (s *sender) connected() bool { return s.client != nil }

// credentials reads the secrets once per flush, and destroys them at once:
// the Authorization header and the copies kept to redact response text live
// only as long as the flush.
func (s *sender) credentials() (flushAuth, error) {
	user, err := s.cfg.user.Get()
	if err != nil {
		return flushAuth{}, fmt.Errorf("reading api_user: %w", err)
	}
	defer user.Destroy()
	token, err := s.cfg.token.Get()
	if err != nil {
		return flushAuth{}, fmt.Errorf("reading api_token: %w", err)
	}
	defer token.Destroy()
	creds := make([]byte, 0, len(user.Bytes())+1+len(token.Bytes()))
	creds = append(append(append(creds, user.Bytes()...), ':'), token.Bytes()...)
	basic := base64.StdEncoding.EncodeToString(creds)
	clear(creds)
	r := flushAuth{auth: []string{"Basic " + basic}}
	r.secrets = secretForms(user.TemporaryString(), token.TemporaryString(), basic)
	return r, nil
}

// secretForms lists every way a proxy or API might echo the credentials:
// as they are, as the Basic header's base64, JSON-escaped and URL-escaped.
// Strings shorter than 3 bytes are left out: they would redact ordinary text.
func secretForms(user, token, basic string) [][]byte {
	var forms [][]byte
	add := func(s string) {
		if len(s) >= 3 && !slices.ContainsFunc(forms, func(f []byte) bool { return string(f) == s }) {
			forms = append(forms, []byte(s))
		}
	}
	add(basic)
	add(strings.TrimRight(basic, "="))
	for _, secret := range []string{user, token} {
		add(secret)
		if quoted, err := json.Marshal(secret); err == nil { // a string always marshals
			add(string(quoted[1 : len(quoted)-1]))
			add(strings.ReplaceAll(string(quoted[1:len(quoted)-1]), "/", `\/`))
		}
		add(strconv.QuoteToASCII(secret)[1 : len(strconv.QuoteToASCII(secret))-1])
		add(url.QueryEscape(secret))
		add(url.PathEscape(secret))
	}
	// Longest first, so a form is not half-replaced by a shorter one.
	slices.SortFunc(forms, func(a, b []byte) int { return len(b) - len(a) })
	return forms
}

// flushAuth is one flush's credentials: the Authorization header, and the
// secrets to redact from response text. It lives only as long as the flush.
type flushAuth struct {
	auth    []string
	secrets [][]byte
}

// redact removes the credentials from text that came from the network: an
// API or proxy echoing them must not put them in our logs.
func (r *flushAuth) redact(text []byte) []byte {
	for _, secret := range r.secrets {
		text = bytes.ReplaceAll(text, secret, []byte("[redacted]"))
	}
	return text
}

func (r *flushAuth) forget() {
	for _, secret := range r.secrets {
		clear(secret)
	}
}

// post sends one body to ep and classifies the answer. ctx carries the
// Write's deadline.
func (s *sender) post(ctx context.Context, r *flushAuth, ep endpoint, body *payload, n int) outcome {
	writes := body.track()
	defer writes.doReturned()
	req, err := s.newRequest(ctx, r, ep.url, writes)
	if err != nil {
		return outcome{kind: halt, err: err}
	}
	start := time.Now()
	s.stats.requests.Incr(1)
	resp, err := s.client.Do(req)
	elapsed := time.Since(start)
	s.stats.requestTime.Incr(elapsed.Nanoseconds())
	if err != nil {
		if s.cfg.debug {
			s.log.Infof("POST %s: %d measurements, %d bytes: failed after %s: %v", ep.url, n, len(body.wire), elapsed, err)
		}
		return outcome{kind: transient, err: fmt.Errorf("sending to librato: %w", err)}
	}
	defer resp.Body.Close()
	text, readErr := s.readResponse(r, resp, ep.tagged)
	if s.cfg.debug {
		s.log.Infof("POST %s: %d measurements, %d bytes: %s -> %d in %s: %s",
			ep.url, n, len(body.wire), excerpt(body.json), resp.StatusCode, elapsed, excerpt(text))
	}
	now := s.clock.Now()
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", string(r.redact([]byte(loc))))
	}
	o := unfinished(classify(resp.StatusCode, resp.Header, text, ep.tagged, now), readErr)
	// The reason is decoded JSON: \u-escaped secrets are plain text now.
	o.reason = string(r.redact([]byte(o.reason)))
	pause, budget := s.pace.observe(resp.Header, now, int(s.committed.Load())-1) // the others
	if budget.ok {
		s.stats.rateLimit.Set(budget.limit)
		s.stats.rateRemaining.Set(budget.remaining)
	}
	if o.kind == delivered {
		s.accepted.Store(true)
		o.retryAfter = max(spentBudgetReset(resp.Header, now), pause) // the budget is (nearly) spent: pause before the next
		if ep.tagged {
			o.apiFailed, o.apiErrors = acceptedWithFailures(text)
		}
	}
	s.gate.pause(o.retryAfter)
	return o
}

// readResponse returns the (redacted) start of the response body, and why
// reading it stopped early, if it did. A plain success needs none of it: the
// body is only drained, within the limit, so the connection can be reused.
func (s *sender) readResponse(r *flushAuth, resp *http.Response, tagged bool) ([]byte, error) {
	body := io.LimitReader(resp.Body, maxResponseRead)
	if resp.StatusCode/100 == 2 && !s.cfg.debug && !tagged {
		_, err := io.Copy(io.Discard, body)
		return nil, err
	}
	raw, err := io.ReadAll(body)
	return r.redact(raw), err
}

func (s *sender) newRequest(ctx context.Context, r *flushAuth, target string, writes *bodyWrites) (*http.Request, error) {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: writes.wrote})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, writes.body())
	if err != nil {
		return nil, fmt.Errorf("creating request: %w", err)
	}
	req.ContentLength = int64(len(writes.p.wire))
	req.GetBody = func() (io.ReadCloser, error) { return writes.body(), nil }
	req.Header["Authorization"] = r.auth
	req.Header["Content-Type"] = contentTypeJSON
	req.Header["User-Agent"] = s.userAgent
	if s.cfg.gzip {
		req.Header["Content-Encoding"] = contentEncodingGzip
	}
	return req, nil
}

var (
	contentTypeJSON     = []string{"application/json"}
	contentEncodingGzip = []string{"gzip"}
)
