package librato

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime/debug"
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
	url                    string
	tagged                 bool
	user, token            *config.Secret
	timeout, retryBudget   time.Duration
	measurementsPerRequest int
	concurrency            int
	gzip                   bool
	debug                  bool
	tls                    *tls.ClientConfig
	proxy                  *proxy.HTTPProxy
}

// sender owns the HTTP client and everything shared by the requests of all
// flushes: the rate-limit gate and the pooled request buffers.
type sender struct {
	cfg       senderConfig
	log       telegraf.Logger
	stats     *stats
	userAgent []string

	client *http.Client
	gate   rateGate
	bufs   sync.Pool // *payload
	gzips  sync.Pool // *gzip.Writer
}

func newSender(cfg senderConfig, st *stats, log telegraf.Logger) (*sender, error) {
	s := &sender{cfg: cfg, log: log, stats: st, userAgent: []string{userAgent()}}
	s.bufs.New = func() any { return &payload{pool: &s.bufs} }
	return s, nil
}

func userAgent() string {
	version := "devel"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == modulePath && dep.Version != "" {
				version = dep.Version
			}
		}
	}
	return "telegraf-output-librato/" + version
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
	s.client = &http.Client{Transport: transport, Timeout: s.cfg.timeout}
	return nil
}

func (s *sender) close() {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
}

// credentials reads the secrets once per flush, and destroys them at once:
// the Authorization header and the copies kept to redact response text live
// only as long as the flush.
func (s *sender) credentials() (request, error) {
	user, err := s.cfg.user.Get()
	if err != nil {
		return request{}, fmt.Errorf("reading api_user: %w", err)
	}
	defer user.Destroy()
	token, err := s.cfg.token.Get()
	if err != nil {
		return request{}, fmt.Errorf("reading api_token: %w", err)
	}
	defer token.Destroy()
	creds := make([]byte, 0, len(user.Bytes())+1+len(token.Bytes()))
	creds = append(append(append(creds, user.Bytes()...), ':'), token.Bytes()...)
	r := request{auth: []string{"Basic " + base64.StdEncoding.EncodeToString(creds)}}
	clear(creds)
	for _, secret := range [][]byte{user.Bytes(), token.Bytes()} {
		if len(secret) >= 3 { // shorter strings would redact ordinary text
			r.secrets = append(r.secrets, bytes.Clone(secret))
		}
	}
	return r, nil
}

// request is one flush's shared request settings.
type request struct {
	auth    []string
	secrets [][]byte
}

// redact removes the credentials from text that came from the network: an
// API or proxy echoing them must not put them in our logs.
func (r *request) redact(text []byte) []byte {
	for _, secret := range r.secrets {
		text = bytes.ReplaceAll(text, secret, []byte("[redacted]"))
	}
	return text
}

func (r *request) forget() {
	for _, secret := range r.secrets {
		clear(secret)
	}
}

// post sends one body and classifies the answer.
func (s *sender) post(r *request, body *payload, n int) outcome {
	writes := body.track()
	defer writes.doReturned()
	req, err := s.newRequest(r, writes)
	if err != nil {
		return outcome{kind: fatal, err: err}
	}
	start := time.Now()
	s.stats.requests.Incr(1)
	resp, err := s.client.Do(req)
	elapsed := time.Since(start)
	s.stats.requestTime.Incr(elapsed.Nanoseconds())
	if err != nil {
		if s.cfg.debug {
			s.log.Infof("POST %s: %d measurements, %d bytes: failed after %s: %v", s.cfg.url, n, len(body.wire), elapsed, err)
		}
		return outcome{kind: transient, err: fmt.Errorf("sending to librato: %w", err)}
	}
	defer resp.Body.Close()
	text := s.readResponse(r, resp)
	if s.cfg.debug {
		s.log.Infof("POST %s: %d measurements, %d bytes: %s -> %d in %s: %s",
			s.cfg.url, n, len(body.wire), excerpt(body.json), resp.StatusCode, elapsed, excerpt(text))
	}
	o := classify(resp.StatusCode, resp.Header, text, s.cfg.tagged)
	if wait := rateLimitReset(resp.Header); o.kind == delivered && wait > 0 {
		s.gate.block(wait) // the API told us its budget is spent
	}
	if o.kind == delivered && s.cfg.tagged && bytes.Contains(text, []byte(`"errors"`)) {
		s.log.Warnf("Librato accepted a request but reported errors: %s", excerpt(text))
	}
	return o
}

// readResponse returns the (redacted) start of the response body. A plain
// success needs none of it: the body is only drained, within the limit, so
// the connection can be reused.
func (s *sender) readResponse(r *request, resp *http.Response) []byte {
	body := io.LimitReader(resp.Body, maxResponseRead)
	if resp.StatusCode/100 == 2 && !s.cfg.debug && !s.cfg.tagged {
		_, _ = io.Copy(io.Discard, body)
		return nil
	}
	raw, _ := io.ReadAll(body)
	return r.redact(raw)
}

func (s *sender) newRequest(r *request, writes *bodyWrites) (*http.Request, error) {
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteRequest: writes.wrote})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.url, writes.body())
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

// encode fills a pooled payload with the body for pts.
func (s *sender) encode(pts []point) (*payload, error) {
	p := s.bufs.Get().(*payload)
	p.refs.Store(1)
	if s.cfg.tagged {
		p.json = encodeTagged(p.json[:0], pts)
	} else {
		p.json = encodeLegacy(p.json[:0], pts)
	}
	p.wire = p.json
	if !s.cfg.gzip {
		return p, nil
	}
	if err := s.compress(p); err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

func (s *sender) compress(p *payload) error {
	out := bytes.NewBuffer(p.zipped[:0])
	zw, ok := s.gzips.Get().(*gzip.Writer)
	if ok {
		zw.Reset(out)
	} else {
		zw = gzip.NewWriter(out)
	}
	defer s.gzips.Put(zw)
	if _, err := zw.Write(p.json); err != nil {
		return fmt.Errorf("compressing request: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing request: %w", err)
	}
	p.zipped = out.Bytes()
	p.wire = p.zipped
	return nil
}

// payload is a pooled request body. It goes back to the pool when the batch
// is done with it and no request can still be reading it.
type payload struct {
	json, zipped, wire []byte
	refs               atomic.Int32
	pool               *sync.Pool
}

func (p *payload) release() {
	if p.refs.Add(-1) == 0 {
		p.pool.Put(p)
	}
}

// track starts one request's use of the payload.
func (p *payload) track() *bodyWrites {
	p.refs.Add(1)
	return &bodyWrites{p: p}
}

// bodyWrites follows one request's writes of a payload. net/http may still
// be writing the body after Do returns (when the server answers early) and
// may write it more than once (GetBody on a retry), so the payload is
// released only when Do has returned and every write that started has
// finished. If a write never reports back, the payload is left to the
// garbage collector rather than reused too early.
//
// The body is a NopCloser around a bytes.Reader on purpose: net/http knows
// that type is in memory and sends headers and body in one buffered write,
// where any other reader costs an extra flush and a copy buffer per request.
type bodyWrites struct {
	p                 *payload
	mu                sync.Mutex
	started, finished int
	returned, done    bool
}

func (w *bodyWrites) body() io.ReadCloser {
	w.mu.Lock()
	w.started++
	w.mu.Unlock()
	return io.NopCloser(bytes.NewReader(w.p.wire))
}

func (w *bodyWrites) wrote(httptrace.WroteRequestInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished++
	w.releaseIfIdle()
}

func (w *bodyWrites) doReturned() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.returned = true
	w.releaseIfIdle()
}

func (w *bodyWrites) releaseIfIdle() {
	if w.returned && !w.done && w.finished >= w.started {
		w.done = true
		w.p.release()
	}
}

// rateGate holds every request while Librato has asked us to wait.
type rateGate struct {
	mu    sync.Mutex
	until time.Time
}

var errBlocked = errors.New("librato asked to pause sending")

func (g *rateGate) block(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if until := time.Now().Add(d); until.After(g.until) {
		g.until = until
	}
}

// wait returns when sending is allowed again, or errBlocked at once if that
// is later than deadline.
func (g *rateGate) wait(ctx context.Context, deadline time.Time) error {
	g.mu.Lock()
	until := g.until
	g.mu.Unlock()
	if !time.Now().Before(until) {
		return nil
	}
	if until.After(deadline) {
		return fmt.Errorf("%w until %s, past this flush's retry_budget", errBlocked, until.Format(time.RFC3339))
	}
	return sleep(ctx, time.Until(until))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
