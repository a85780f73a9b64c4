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
	"runtime/debug"
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
	userAgent string

	client *http.Client
	gate   rateGate
	bufs   sync.Pool // *payload
	gzips  sync.Pool // *gzip.Writer
}

func newSender(cfg senderConfig, st *stats, log telegraf.Logger) (*sender, error) {
	s := &sender{cfg: cfg, log: log, stats: st, userAgent: userAgent()}
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

// authorization reads the secrets once per flush; they are destroyed at
// once and the header value lives only as long as the flush.
func (s *sender) authorization() (string, error) {
	user, err := s.cfg.user.Get()
	if err != nil {
		return "", fmt.Errorf("reading api_user: %w", err)
	}
	defer user.Destroy()
	token, err := s.cfg.token.Get()
	if err != nil {
		return "", fmt.Errorf("reading api_token: %w", err)
	}
	defer token.Destroy()
	creds := make([]byte, 0, len(user.Bytes())+1+len(token.Bytes()))
	creds = append(append(append(creds, user.Bytes()...), ':'), token.Bytes()...)
	defer clear(creds)
	return "Basic " + base64.StdEncoding.EncodeToString(creds), nil
}

// redactor removes the credentials from text that came from the network:
// an API or proxy echoing them must not put them in our logs.
func (s *sender) redactor() *strings.Replacer {
	var pairs []string
	for _, secret := range []*config.Secret{s.cfg.user, s.cfg.token} {
		b, err := secret.Get()
		if err != nil {
			continue
		}
		if v := b.String(); len(v) >= 3 {
			pairs = append(pairs, v, "[redacted]")
		}
		b.Destroy()
	}
	return strings.NewReplacer(pairs...)
}

// request is one flush's shared request settings.
type request struct {
	auth   string
	redact *strings.Replacer
}

// post sends one body and classifies the answer.
func (s *sender) post(r *request, body *payload, n int) outcome {
	req, err := s.newRequest(r, body)
	if err != nil {
		return outcome{kind: fatal, err: err}
	}
	start := time.Now()
	s.stats.requests.Incr(1)
	resp, err := s.client.Do(req)
	elapsed := time.Since(start)
	s.stats.requestTime.Incr(elapsed.Nanoseconds())
	if err != nil {
		s.debugf("POST %s: %d measurements, %d bytes: failed after %s: %v", s.cfg.url, n, len(body.wire), elapsed, err)
		return outcome{kind: transient, err: fmt.Errorf("sending to librato: %w", err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	text := []byte(r.redact.Replace(string(raw)))
	s.debugf("POST %s: %d measurements, %d bytes: %d in %s: %s", s.cfg.url, n, len(body.wire), resp.StatusCode, elapsed, excerpt(text))
	o := classify(resp.StatusCode, resp.Header, text, s.cfg.tagged)
	if wait := rateLimitReset(resp.Header); o.kind == delivered && wait > 0 {
		s.gate.block(wait) // the API told us its budget is spent
	}
	if o.kind == delivered && s.cfg.tagged && bytes.Contains(text, []byte(`"errors"`)) {
		s.log.Warnf("Librato accepted a request but reported errors: %s", excerpt(text))
	}
	return o
}

func (s *sender) newRequest(r *request, body *payload) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, s.cfg.url, body.reader())
	if err != nil {
		return nil, fmt.Errorf("creating request: %w", err)
	}
	req.ContentLength = int64(len(body.wire))
	req.GetBody = func() (io.ReadCloser, error) { return body.reader(), nil }
	req.Header["Authorization"] = []string{r.auth}
	req.Header["Content-Type"] = contentTypeJSON
	req.Header["User-Agent"] = []string{s.userAgent}
	if s.cfg.gzip {
		req.Header["Content-Encoding"] = contentEncodingGzip
	}
	return req, nil
}

var (
	contentTypeJSON     = []string{"application/json"}
	contentEncodingGzip = []string{"gzip"}
)

// debugf logs at Info level when debug = true, so the request log is visible
// without turning on the agent's debug output.
func (s *sender) debugf(format string, args ...any) {
	if s.cfg.debug {
		s.log.Infof(format, args...)
	}
}

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

// payload is a pooled request body. The transport may still read a body
// after Do returns, so a payload goes back to the pool only when its last
// reader is closed and the batch is done with it.
type payload struct {
	json, zipped, wire []byte
	refs               atomic.Int32
	pool               *sync.Pool
}

func (p *payload) reader() io.ReadCloser {
	p.refs.Add(1)
	return &payloadReader{Reader: bytes.NewReader(p.wire), p: p}
}

func (p *payload) release() {
	if p.refs.Add(-1) == 0 {
		p.pool.Put(p)
	}
}

type payloadReader struct {
	*bytes.Reader
	p    *payload
	once sync.Once
}

func (r *payloadReader) Close() error {
	r.once.Do(r.p.release)
	return nil
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
