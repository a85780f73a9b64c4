package benchkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// Sink is a minimal in-process API stand-in for CPU and allocation
// measurements: it reads and discards every body (without decoding it, so
// the fake's JSON parsing does not pollute the counts) and answers an empty
// 200. It runs in the benchmark's process, so its request handling is part
// of the measured CPU, allocations and bytes; it is kept as small as
// net/http allows and is the same for both plugins.
type Sink struct {
	srv      *httptest.Server
	latency  time.Duration
	requests atomic.Int64
	bytes    atomic.Int64
}

// NewSink starts a sink on loopback.
func NewSink() *Sink { return NewSlowSink(0) }

// NewSlowSink starts a sink that answers each request latency after it
// has read the body: an API whose only cost is its response time.
func NewSlowSink(latency time.Duration) *Sink {
	s := &Sink{latency: latency}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body) // io.Discard reads with a pooled buffer
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	s.bytes.Add(n)
	s.requests.Add(1)
	w.WriteHeader(http.StatusOK)
}

// URL is the legacy metrics endpoint of the sink.
func (s *Sink) URL() string { return s.srv.URL + "/v1/metrics" }

// Requests is the number of requests answered since the last Reset.
func (s *Sink) Requests() int64 { return s.requests.Load() }

// Bytes is the number of body bytes received, as sent on the wire (still
// compressed when the client gzips), since the last Reset.
func (s *Sink) Bytes() int64 { return s.bytes.Load() }

// Reset zeroes the counters.
func (s *Sink) Reset() {
	s.requests.Store(0)
	s.bytes.Store(0)
}

// Close stops the sink.
func (s *Sink) Close() { s.srv.Close() }
