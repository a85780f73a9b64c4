// Package fakelibrato is a loopback fake of the Librato metrics API for
// tests of the Librato output plugin. It enforces the request rules listed in
// the shared API notes ("What a faithful fake server must check"), records
// what it accepted, and can inject faults, latency and rate limits.
package fakelibrato

import (
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

const (
	legacyPath      = "/v1/metrics"
	taggedPath      = "/v1/measurements"
	defaultMaxBody  = 3 << 20 // Librato's documented 3 MB request limit
	rateLimitHeader = "X-Librato-RateLimit-Std"
)

// probeBody is the answer to the credential probe GET /v1/metrics.
var probeBody = []byte(`{"query":{"offset":0,"length":0,"found":0,"total":0},"metrics":[]}`)

// Options configures a fake server. The zero value of every field except
// User/Token means "feature off" or "use the default".
type Options struct {
	// User and Token are the required HTTP Basic credentials. Every request
	// must carry Basic auth that matches them exactly, else 401.
	User, Token string
	// TLS serves HTTPS with httptest's self-signed certificate.
	TLS bool
	// RequireHTTPS (with TLS=false) answers every authenticated request 403.
	RequireHTTPS bool
	// Latency delays every answer; the wait ends early if the client leaves.
	Latency time.Duration
	// MaxPast rejects measure_time/time older than Now()-MaxPast; 0 disables.
	MaxPast time.Duration
	// Now is the clock for time checks; default time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds the raw and the decompressed body; default 3 MiB.
	MaxBodyBytes int64
	// AllowGzip accepts Content-Encoding: gzip; otherwise such bodies get 415.
	AllowGzip bool
	// TaggedDisabled makes POST /v1/measurements answer 403 as for accounts
	// without tag support.
	TaggedDisabled bool
	// Fault, if set, is called for every request that got past auth, routing
	// and body decoding, before rate limiting and validation. n is the
	// 1-based arrival number across all requests (including rejected ones).
	Fault func(n int, r *Received) Action
	// RateLimit > 0 accepts at most that many requests per RateLimitWindow
	// (fixed window, wall clock) and answers the rest 429.
	RateLimit int
	// RateLimitWindow defaults to one second.
	RateLimitWindow time.Duration
	// Addr is the listen address; default 127.0.0.1 with a random port.
	Addr string
	// Observe, if set, is called once for every answered request, after it
	// is in the request log, with what that request stored (nothing when it
	// was rejected). Calls may run concurrently.
	Observe func(Event)
}

// Event is one answered request and what it stored, for Options.Observe.
type Event struct {
	Request
	Gauges, Counters []Gauge
	Measurements     []Measurement
}

// Received is what the fake saw in one request, as passed to the fault hook.
type Received struct {
	N            int
	Method, Path string
	Header       http.Header
	// Body is the request body after gzip decoding.
	Body []byte
	// Gauges holds the legacy gauges of the body, if it parsed, in order
	// (object-form gauges in key order), whether or not they are valid.
	Gauges []Gauge
	// Measurements holds the tagged measurements, if the body matched the
	// schema, with effective tags resolved.
	Measurements []Measurement
}

// Gauge is one accepted legacy measurement (plain or complex).
type Gauge struct {
	Name, Source                  string
	Value                         float64 // plain gauge
	Count                         int64   // complex gauge (0 for plain)
	Sum, Min, Max, SumSquares     float64
	HasMin, HasMax, HasSumSquares bool
	// MeasureTime is the entry's own or the top-level one; 0 if none.
	MeasureTime int64
}

// Measurement is one accepted tagged measurement.
type Measurement struct {
	Name string
	// Tags are the effective tags (own tags replace top-level ones),
	// lower-cased as Librato stores them.
	Tags                               map[string]string
	Value                              float64
	Count                              int64
	Sum, Min, Max, Last, StdDev        float64
	HasMin, HasMax, HasLast, HasStdDev bool
	Time                               int64
}

// Request is one entry of the request log; every request is logged,
// accepted or not. Status 0 means no answer was sent (reset, hang, abort).
type Request struct {
	N            int
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
	Response     []byte
}

// Server is a running fake. All methods are safe for concurrent use.
type Server struct {
	opts      Options
	ts        *httptest.Server
	done      chan struct{} // closed by Close to release hanging handlers
	closeOnce sync.Once

	mu           sync.Mutex
	gen          int // bumped by Reset so in-flight requests don't record
	n            int
	fault        func(int, *Received) Action
	gauges       []Gauge
	counters     []Gauge
	measurements []Measurement
	requests     []Request
	kinds        map[string]libratoapi.Kind
	limiter      limiter
}

// exchange carries one request through the handler stages.
type exchange struct {
	n, gen  int
	w       http.ResponseWriter
	r       *http.Request
	body    []byte            // raw until decodeContent replaces it with the decoded body
	readErr *libratoapi.Error // body read failure, answered at the body-size stage
	rate    string            // X-Librato-RateLimit-Std value once the request was admitted
	// answerAt is arrival + Options.Latency: decoding and validating run
	// during the wait, so a request takes Latency however busy the CPU is.
	answerAt time.Time
	delayed  bool
	stored   *outcome // what a successful POST stored, for Options.Observe
}

// outcome is the validation result of a POST, computed before the fault
// hook runs but only answered after it and the rate limiter.
type outcome struct {
	gauges, counters []Gauge
	measurements     []Measurement
	err              *libratoapi.Error
	status           int
}

// New starts a fake on 127.0.0.1 with a random port (or Options.Addr).
// Like httptest.NewServer it panics if it cannot listen, which is an
// environment failure, not input; Listen returns that error instead.
func New(opts Options) *Server {
	s, err := Listen(opts)
	if err != nil {
		panic(fmt.Sprintf("fakelibrato: %v", err))
	}
	return s
}

// Listen starts a fake like New and returns an error if it cannot listen.
func Listen(opts Options) (*Server, error) {
	s := &Server{opts: withDefaults(opts), done: make(chan struct{})}
	s.fault = s.opts.Fault
	s.kinds = make(map[string]libratoapi.Kind)
	s.limiter = limiter{limit: s.opts.RateLimit, window: s.opts.RateLimitWindow}

	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// httptest may fall back to [::1]; the brief wants IPv4 loopback only.
	_ = s.ts.Listener.Close()
	network, addr := "tcp4", "127.0.0.1:0"
	if s.opts.Addr != "" {
		network, addr = "tcp", s.opts.Addr
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ts.Listener = ln
	// Resets, hangs and untrusting TLS clients make net/http log noise
	// that would only clutter test output.
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if s.opts.TLS {
		s.ts.StartTLS()
	} else {
		s.ts.Start()
	}
	return s, nil
}

func withDefaults(o Options) Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBody
	}
	if o.RateLimitWindow <= 0 {
		o.RateLimitWindow = time.Second
	}
	return o
}

// URL is the base URL without a path, e.g. "http://127.0.0.1:12345".
func (s *Server) URL() string { return s.ts.URL }

// LegacyURL is the source-based endpoint.
func (s *Server) LegacyURL() string { return s.ts.URL + legacyPath }

// TaggedURL is the tag-based endpoint.
func (s *Server) TaggedURL() string { return s.ts.URL + taggedPath }

// Client returns a client that trusts the server certificate in TLS mode.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// CACertPEM returns the self-signed server certificate (usable as tls_ca)
// in TLS mode and nil otherwise.
func (s *Server) CACertPEM() []byte {
	if !s.opts.TLS {
		return nil
	}
	cert := s.ts.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Close releases hanging handlers first, because httptest.Server.Close
// waits for every active handler.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ts.Close()
	})
}

// Gauges returns all accepted legacy gauges in arrival order.
func (s *Server) Gauges() []Gauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.gauges)
}

// Counters returns all accepted legacy counters (as Gauge values with Value
// set) in arrival order. Not part of the required API; handy for debugging.
func (s *Server) Counters() []Gauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.counters)
}

// Measurements returns all accepted tagged measurements in arrival order.
func (s *Server) Measurements() []Measurement {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneMeasurements(s.measurements)
}

// Requests returns the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		r.Response = bytes.Clone(r.Response)
		out[i] = r
	}
	return out
}

// CountGauge counts accepted gauges with exactly this name, source and
// effective measure_time, for exactly-once delivery assertions.
func (s *Server) CountGauge(name, source string, measureTime int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.gauges {
		if g.Name == name && g.Source == source && g.MeasureTime == measureTime {
			n++
		}
	}
	return n
}

// Reset forgets recorded data, metric types, rate-limit state and the
// arrival counter. Requests still in flight are neither stored nor logged.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.n = 0
	s.gauges, s.counters, s.measurements, s.requests = nil, nil, nil, nil
	s.kinds = make(map[string]libratoapi.Kind)
	s.limiter.reset()
}

// SetFault replaces the fault hook; nil disables fault injection.
func (s *Server) SetFault(f func(n int, r *Received) Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// serve runs the stages in the order Librato-like clients must cope with:
// auth, HTTPS, routing, body limits, media type, fault, rate limit, validation.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	ex := s.arrive(w, r)
	// Read the body up front: net/http only notices a vanished client (and
	// cancels r.Context()) once the body is consumed, and the latency wait
	// must end when the client gives up. Read errors are answered later, in
	// the documented order.
	s.readRaw(ex)
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Librato API"`)
		s.replyError(ex, errAuth)
		return
	}
	if s.opts.RequireHTTPS && r.TLS == nil {
		s.replyError(ex, errHTTPS)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == legacyPath:
		s.serveProbe(ex)
	case r.Method == http.MethodPost && r.URL.Path == legacyPath:
		s.servePost(ex, s.decodeLegacy, s.storeLegacy)
	case r.Method == http.MethodPost && r.URL.Path == taggedPath:
		s.servePost(ex, s.decodeTagged, s.storeTagged)
	default:
		s.replyError(ex, errNotFound)
	}
}

func (s *Server) arrive(w http.ResponseWriter, r *http.Request) *exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return &exchange{n: s.n, gen: s.gen, w: w, r: r, answerAt: time.Now().Add(s.opts.Latency)}
}

func (s *Server) authorized(r *http.Request) bool {
	user, token, ok := r.BasicAuth()
	// Constant-time comparison is not needed for a fake, but it keeps the
	// code shaped like a real credential check.
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.User)) == 1
	tokenOK := subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.Token)) == 1
	return ok && userOK && tokenOK
}

func (s *Server) serveProbe(ex *exchange) {
	if s.applyFault(ex, s.received(ex, nil)) || !s.admit(ex) {
		return
	}
	s.reply(ex, http.StatusOK, jsonHeader(), probeBody)
}

// servePost handles both write endpoints; decode validates without side
// effects, store commits atomically (and may still reject, e.g. on a type
// conflict with previously stored metrics).
func (s *Server) servePost(ex *exchange, decode func([]byte) outcome, store func(*exchange, outcome) *libratoapi.Error) {
	body, aerr := s.readBody(ex)
	if aerr != nil {
		s.replyError(ex, aerr)
		return
	}
	out := decode(body)
	if !s.delay(ex) { // before storing: a client that gave up stores nothing
		return
	}
	if s.applyFault(ex, s.received(ex, &out)) || !s.admit(ex) {
		return
	}
	if out.err == nil {
		out.err = store(ex, out)
	}
	if out.err != nil {
		s.replyError(ex, out.err)
		return
	}
	ex.stored = &out
	s.reply(ex, out.status, jsonHeader(), []byte("{}"))
}

// received builds the fault hook's view with its own copies, so a hook that
// mutates it cannot change what gets stored.
func (s *Server) received(ex *exchange, out *outcome) *Received {
	rec := &Received{
		N:      ex.n,
		Method: ex.r.Method,
		Path:   ex.r.URL.Path,
		Header: ex.r.Header.Clone(),
		Body:   bytes.Clone(ex.body),
	}
	if out != nil {
		rec.Gauges = slices.Clone(out.gauges)
		rec.Measurements = cloneMeasurements(out.measurements)
	}
	return rec
}

// readRaw reads the body within MaxBodyBytes and remembers a failure.
func (s *Server) readRaw(ex *exchange) {
	limit := s.opts.MaxBodyBytes
	if ex.r.ContentLength > limit {
		ex.readErr = errTooLarge
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(ex.w, ex.r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		ex.readErr = errTooLarge
	case err != nil:
		ex.readErr = errReadBody
	default:
		ex.body = raw
	}
}

// readBody reports the size limit, the media type and the content
// encoding, in that order, and returns the decoded body.
func (s *Server) readBody(ex *exchange) ([]byte, *libratoapi.Error) {
	if ex.readErr != nil {
		return nil, ex.readErr
	}
	if !isJSON(ex.r.Header.Get("Content-Type")) {
		return nil, errMediaType
	}
	return s.decodeContent(ex, ex.body)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func (s *Server) decodeContent(ex *exchange, raw []byte) ([]byte, *libratoapi.Error) {
	encs := ex.r.Header.Values("Content-Encoding")
	if len(encs) == 0 {
		return raw, nil
	}
	enc := strings.ToLower(strings.TrimSpace(strings.Join(encs, ",")))
	switch {
	case enc == "" || enc == "identity":
		return raw, nil
	case (enc == "gzip" || enc == "x-gzip") && s.opts.AllowGzip:
		body, aerr := gunzip(raw, s.opts.MaxBodyBytes)
		if aerr == nil {
			ex.body = body
		}
		return body, aerr
	default:
		return nil, errEncoding
	}
}

// gunzip bounds the decompressed size too, so a small gzip bomb cannot
// blow up memory.
func gunzip(raw []byte, limit int64) ([]byte, *libratoapi.Error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, errBadGzip
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, errBadGzip
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

func (s *Server) replyError(ex *exchange, e *libratoapi.Error) {
	s.reply(ex, e.Status, jsonHeader(), e.Body)
}

// reply logs before writing: a client that has read the answer must find the
// request in Requests() without racing the handler.
func (s *Server) reply(ex *exchange, status int, hdr http.Header, body []byte) {
	if !s.delay(ex) {
		return
	}
	s.logRequest(ex, status, body)
	s.observe(ex, status, body)
	s.writeHeader(ex, status, hdr)
	_, _ = ex.w.Write(body) // a vanished client is not the fake's problem
}

// writeHeader sends the status with hdr and the rate-limit header.
func (s *Server) writeHeader(ex *exchange, status int, hdr http.Header) {
	h := ex.w.Header()
	for k, vs := range hdr {
		h[k] = slices.Clone(vs)
	}
	if ex.rate != "" {
		h.Set(rateLimitHeader, ex.rate)
	}
	ex.w.WriteHeader(status)
}

func (s *Server) logRequest(ex *exchange, status int, resp []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex.gen != s.gen {
		return
	}
	s.requests = append(s.requests, Request{
		N:        ex.n,
		Method:   ex.r.Method,
		Path:     ex.r.URL.Path,
		Status:   status,
		Header:   ex.r.Header.Clone(),
		Body:     bytes.Clone(ex.body),
		Response: bytes.Clone(resp),
	})
}

// observe hands Options.Observe its own copies of the exchange.
func (s *Server) observe(ex *exchange, status int, resp []byte) {
	if s.opts.Observe == nil {
		return
	}
	e := Event{Request: Request{
		N:        ex.n,
		Method:   ex.r.Method,
		Path:     ex.r.URL.Path,
		Status:   status,
		Header:   ex.r.Header.Clone(),
		Body:     bytes.Clone(ex.body),
		Response: bytes.Clone(resp),
	}}
	if ex.stored != nil {
		e.Gauges = slices.Clone(ex.stored.gauges)
		e.Counters = slices.Clone(ex.stored.counters)
		e.Measurements = cloneMeasurements(ex.stored.measurements)
	}
	s.opts.Observe(e)
}

func cloneMeasurements(ms []Measurement) []Measurement {
	if ms == nil {
		return nil
	}
	out := make([]Measurement, len(ms))
	for i, m := range ms {
		m.Tags = maps.Clone(m.Tags)
		out[i] = m
	}
	return out
}
