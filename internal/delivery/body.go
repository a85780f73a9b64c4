package delivery

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// MaxPooledBody is the largest request buffer kept for reuse: a request of
// 300 measurements of the longest usual names and tag sets. Bigger bodies
// (up to maxBodyBytes) are let go after their request, so the pool holds at
// most concurrent_writes × 256 KiB however large the flushes are.
const MaxPooledBody = 256 << 10

// encode fills a pooled payload with the body for pts.
func (s *Sender) encode(pts []Measurement, tagged bool) (*payload, error) {
	p := s.bufs.Get().(*payload)
	p.refs.Store(1)
	if cap(p.json) == 0 {
		p.json = make([]byte, 0, min(estimatedBody(pts), MaxPooledBody)) // not a dozen doublings
	}
	if tagged {
		p.json = EncodeTagged(p.json[:0], pts)
	} else {
		p.json = EncodeLegacy(p.json[:0], pts)
	}
	p.wire = p.json
	if !s.cfg.Gzip {
		return p, nil
	}
	if err := s.compress(p); err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

func (s *Sender) compress(p *payload) error {
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
	if p.refs.Add(-1) == 0 && cap(p.json)+cap(p.zipped) <= MaxPooledBody {
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
