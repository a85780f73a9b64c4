package librato

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime/debug"
	"sync"
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
	r := flushAuth{auth: []string{"Basic " + base64.StdEncoding.EncodeToString(creds)}}
	clear(creds)
	for _, secret := range [][]byte{user.Bytes(), token.Bytes()} {
		if len(secret) >= 3 { // shorter strings would redact ordinary text
			r.secrets = append(r.secrets, bytes.Clone(secret))
		}
	}
	return r, nil
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

// post sends one body and classifies the answer.
func (s *sender) post(r *flushAuth, body *payload, n int) outcome {
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
func (s *sender) readResponse(r *flushAuth, resp *http.Response) []byte {
	body := io.LimitReader(resp.Body, maxResponseRead)
	if resp.StatusCode/100 == 2 && !s.cfg.debug && !s.cfg.tagged {
		_, _ = io.Copy(io.Discard, body)
		return nil
	}
	raw, _ := io.ReadAll(body)
	return r.redact(raw)
}

func (s *sender) newRequest(r *flushAuth, writes *bodyWrites) (*http.Request, error) {
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
