package simlibrato

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

// Paths of the two APIs.
const (
	LegacyPath = "/v1/metrics"
	TaggedPath = "/v1/measurements"
)

// Config sets up a simulated Librato.
type Config struct {
	// Host is the API's host: a request anywhere else (a followed
	// redirect) is recorded as foreign and answered 502.
	Host        string
	User, Token string
	Rules       Rules
	// Plan chooses each request's fault; nil answers as Librato would.
	Plan func(*Request) Fault
}

// Request is what a Plan sees of a request.
type Request struct {
	Time    time.Time
	Tagged  bool
	Path    string
	Body    []byte
	Size    int // bytes on the wire
	Count   int // measurements decoded
	Attempt int // earlier requests with the same body
	Write   int
}

// FaultKind is how a request's answer goes wrong, if it does.
type FaultKind int

// The faults.
const (
	Normal      FaultKind = iota // Librato answers (Header is added)
	ResetBefore                  // the connection resets before Librato reads the request
	ResetAfter                   // Librato stores, then the connection resets: a lost acknowledgement
	HangHeaders                  // no answer until the request's context ends; Store says what was stored
	HangBody                     // Librato answers, its body never ends
	CutBody                      // Librato answers, its body is cut off by a reset
	Answer                       // Status, Header and Body, in place of Librato's answer; Store says what was stored
)

// StoreMode is what an Answer or HangHeaders fault stored first.
type StoreMode int

// Store modes.
const (
	StoreNone StoreMode = iota
	StoreValid
	StorePart // about half of the valid measurements
)

// Fault is a Plan's choice for one request.
type Fault struct {
	Kind    FaultKind
	Latency time.Duration
	Status  int
	Header  http.Header
	Body    []byte
	Store   StoreMode
	Label   string
}

// Op is one request in the history.
type Op struct {
	Seq             int
	Write, Instance int
	SentAt          time.Time
	// SentSeq, AnsweredSeq and DoneSeq order events: a request sent, its
	// answer's status and headers handed to the client, the answer's body
	// read to its end. A larger number happened later; 0: never.
	SentSeq, AnsweredSeq, DoneSeq uint64
	Host, Path                    string
	Tagged                        bool
	Authorization                 string
	Foreign                       bool // not the API's host
	Measurements                  []Measurement
	Undecodable                   bool
	Fault                         string
	Stored                        []int // indexes of Measurements stored by this request
	Status                        int   // 0: no answer reached the client
	Header                        http.Header
	Answer                        []byte
	Complete                      bool // the client read the whole answer
	Failed                        int  // a tagged 2xx summary's failures
	AnsweredAt                    time.Time
}

// Confirmed reports whether the client learnt that the request was stored:
// a 2xx answer reached it.
func (o *Op) Confirmed() bool { return o.Status >= 200 && o.Status < 300 }

// Server is the simulated Librato. It is an http.RoundTripper.
type Server struct {
	cfg  Config
	auth string

	mu              sync.Mutex
	seq             uint64
	write, instance int
	ops             []*Op
	attempts        map[uint64]int
}

// New returns a simulated Librato.
func New(cfg Config) *Server {
	creds := base64.StdEncoding.EncodeToString([]byte(cfg.User + ":" + cfg.Token))
	return &Server{cfg: cfg, auth: "Basic " + creds, attempts: make(map[uint64]int)}
}

// SetWrite tags the requests that follow with the agent's Write number and
// the plugin instance.
func (s *Server) SetWrite(write, instance int) {
	s.mu.Lock()
	s.write, s.instance = write, instance
	s.mu.Unlock()
}

// SetPlan replaces the fault plan (nil: healthy).
func (s *Server) SetPlan(p func(*Request) Fault) {
	s.mu.Lock()
	s.cfg.Plan = p
	s.mu.Unlock()
}

// History returns the operations so far, in the order they were sent.
func (s *Server) History() []*Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Op(nil), s.ops...)
}

// Forget drops the history: a plugin keeps its transport, and a memory
// check of the plugin must not count the simulation's records.
func (s *Server) Forget() {
	s.mu.Lock()
	s.ops, s.attempts = nil, make(map[uint64]int)
	s.mu.Unlock()
}

// RoundTrip answers one request in memory.
func (s *Server) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readRequest(req)
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
	now := time.Now()
	s.mu.Lock()
	s.seq++
	op := &Op{Seq: len(s.ops), Write: s.write, Instance: s.instance, SentAt: now, SentSeq: s.seq,
		Host: req.URL.Host, Path: req.URL.Path, Tagged: req.URL.Path == TaggedPath,
		Authorization: req.Header.Get("Authorization")}
	s.ops = append(s.ops, op)
	h := fnv.New64a()
	h.Write(body)
	key := h.Sum64()
	attempt := s.attempts[key]
	s.attempts[key]++
	plan := s.cfg.Plan
	s.mu.Unlock()

	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if req.URL.Host != s.cfg.Host {
		op.Foreign = true
		return s.answer(req, op, http.StatusBadGateway, nil, []byte("foreign host"), nil)
	}
	if op.Authorization != s.auth {
		e := libratoapi.RequestError(http.StatusUnauthorized, libratoapi.MsgCredentials)
		return s.answer(req, op, e.Status, nil, e.Body, nil)
	}
	if op.Path != LegacyPath && op.Path != TaggedPath {
		e := libratoapi.RequestError(http.StatusNotFound, "not found")
		return s.answer(req, op, e.Status, nil, e.Body, nil)
	}

	ms, decodeErr := decode(op.Tagged, body)
	op.Measurements = summarize(ms)
	op.Undecodable = decodeErr != nil
	f := Fault{Kind: Normal}
	if plan != nil {
		f = plan(&Request{Time: now, Tagged: op.Tagged, Path: op.Path, Body: body, Size: int(req.ContentLength),
			Count: len(op.Measurements), Attempt: attempt, Write: op.Write})
	}
	op.Fault = f.Label
	if f.Latency > 0 {
		if err := sleep(req.Context(), f.Latency); err != nil {
			return nil, err
		}
	}
	now = time.Now()

	switch f.Kind {
	case ResetBefore:
		return nil, fmt.Errorf("read: %w", syscall.ECONNRESET)
	case Answer, HangHeaders:
		s.store(op, ms, f.Store, now)
		if f.Kind == HangHeaders {
			<-req.Context().Done()
			return nil, req.Context().Err()
		}
		return s.answer(req, op, f.Status, f.Header, f.Body, nil)
	}

	status, hdr, answer := s.librato(op, ms, decodeErr, now)
	for k, v := range f.Header {
		hdr[k] = v
	}
	switch f.Kind {
	case ResetAfter:
		return nil, fmt.Errorf("read: %w", syscall.ECONNRESET)
	case HangBody:
		return s.answer(req, op, status, hdr, answer, req.Context().Done())
	case CutBody:
		return s.answer(req, op, status, hdr, answer[:len(answer)/2], cut)
	}
	return s.answer(req, op, status, hdr, answer, nil)
}

// cut is a closed channel: the body ends in a reset.
var cut = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// librato processes the request as Librato would: stores and answers.
func (s *Server) librato(op *Op, ms []libratoapi.Measurement, decodeErr *libratoapi.Error, now time.Time) (int, http.Header, []byte) {
	hdr := http.Header{"Content-Type": {"application/json"}}
	if op.Tagged && !s.cfg.Rules.TaggedEnabled {
		e := libratoapi.TaggedNotEnabledError()
		return e.Status, hdr, e.Body
	}
	if decodeErr != nil {
		return decodeErr.Status, hdr, decodeErr.Body
	}
	var bad *libratoapi.FieldError
	badName := ""
	failed := 0
	for i := range ms {
		if fe := s.cfg.Rules.check(&ms[i], now); fe != nil {
			failed++
			if bad == nil {
				bad, badName = fe, ms[i].Name
			}
		}
	}
	if bad == nil || op.Tagged && s.cfg.Rules.TaggedPartial {
		s.store(op, ms, StoreValid, now)
		if !op.Tagged {
			return http.StatusOK, hdr, nil
		}
		op.Failed = failed
		return http.StatusAccepted, hdr, libratoapi.TaggedSummary(len(ms), len(ms)-failed, failed, 0)
	}
	e := bad.Legacy(badName)
	if op.Tagged {
		e = bad.Tagged(badName)
	}
	return e.Status, hdr, e.Body
}

// store records which measurements the request stored: those that pass
// the rules at now, or about half of them (StorePart).
func (s *Server) store(op *Op, ms []libratoapi.Measurement, mode StoreMode, now time.Time) {
	if mode == StoreNone || op.Undecodable {
		return
	}
	if op.Tagged && !s.cfg.Rules.TaggedEnabled {
		return
	}
	stored := make([]int, 0, len(ms))
	for i := range ms {
		if s.cfg.Rules.check(&ms[i], now) != nil {
			continue
		}
		if mode == StorePart && i%2 == 1 {
			continue
		}
		stored = append(stored, i)
	}
	s.mu.Lock()
	op.Stored = stored
	s.mu.Unlock()
}

func (s *Server) answer(req *http.Request, op *Op, status int, hdr http.Header, body []byte, stall <-chan struct{}) (*http.Response, error) {
	if hdr == nil {
		hdr = http.Header{}
	}
	s.mu.Lock()
	s.seq++
	op.Status, op.Header, op.Answer, op.AnsweredAt, op.AnsweredSeq = status, hdr, body, time.Now(), s.seq
	s.mu.Unlock()
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          &answerBody{s: s, op: op, r: bytes.NewReader(body), stall: stall, ctx: req.Context()},
		ContentLength: -1,
		Request:       req,
	}, nil
}

// answerBody is a response body that records when the client has read all
// of it, and can stall or be cut off.
type answerBody struct {
	s     *Server
	op    *Op
	r     *bytes.Reader
	stall <-chan struct{} // after the bytes: block until closed, then fail
	ctx   context.Context
}

func (b *answerBody) Read(p []byte) (int, error) {
	if b.r.Len() > 0 {
		n, err := b.r.Read(p) // never fails with bytes left
		if b.r.Len() == 0 && b.stall == nil {
			b.s.complete(b.op)
		}
		return n, err
	}
	if b.stall == nil {
		b.s.complete(b.op)
		return 0, io.EOF
	}
	if b.stall == cut {
		return 0, fmt.Errorf("read: %w", syscall.ECONNRESET)
	}
	select {
	case <-b.stall:
	case <-b.ctx.Done():
	}
	return 0, fmt.Errorf("reading body: %w", context.Cause(b.ctx))
}

func (*answerBody) Close() error { return nil }

func (s *Server) complete(op *Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !op.Complete {
		s.seq++
		op.Complete, op.DoneSeq = true, s.seq
	}
}

func readRequest(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	defer req.Body.Close()
	raw, err := io.ReadAll(req.Body)
	if err != nil || req.Header.Get("Content-Encoding") != "gzip" {
		return raw, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

// sleep waits d of the (bubble's) clock, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
