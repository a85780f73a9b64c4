package fakelibrato

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Action is what the fault hook wants done with a request. The zero value
// means "process normally". Reset wins over Hang, Hang over Status.
type Action struct {
	// Status, if non-zero, is answered with Header and Body; nothing from
	// the request is stored. Values outside 200-999 are answered as 500,
	// since net/http cannot send them as a final status.
	Status int
	Header http.Header
	Body   []byte
	// Reset hijacks the connection and closes it with a TCP RST, so the
	// client sees a connection error instead of an answer.
	Reset bool
	// Hang never answers: the handler blocks until the client gives up or
	// the server is closed, then drops the connection.
	Hang bool
	// HangBody answers Status with Header and the start of Body, then
	// stalls the rest of the body until the client gives up or the server
	// is closed, like a proxy whose upstream stopped mid-page.
	HangBody bool
}

// applyFault runs the hook and reports whether it took over the request.
func (s *Server) applyFault(ex *exchange, rec *Received) bool {
	s.mu.Lock()
	f := s.fault
	s.mu.Unlock()
	if f == nil {
		return false
	}
	// Called without the lock: the hook may call back into the server.
	a := f(ex.n, rec)
	switch {
	case a.Reset:
		s.logRequest(ex, 0, nil)
		s.abort(ex)
	case a.Hang:
		s.logRequest(ex, 0, nil)
		s.wait(ex, nil)
		s.abort(ex)
	case a.Status != 0 && a.HangBody:
		s.replyStalled(ex, faultStatus(a.Status), a.Header, a.Body)
	case a.Status != 0:
		s.reply(ex, faultStatus(a.Status), a.Header, a.Body)
	default:
		return false
	}
	return true
}

// replyStalled sends the status, the headers (announcing the whole body) and
// half the body, then waits for the client to leave.
func (s *Server) replyStalled(ex *exchange, status int, hdr http.Header, body []byte) {
	if !s.delay(ex) {
		return
	}
	s.logRequest(ex, status, body)
	s.observe(ex, status, body)
	hdr = hdr.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	s.writeHeader(ex, status, hdr)
	_, _ = ex.w.Write(body[:len(body)/2])
	_ = http.NewResponseController(ex.w).Flush()
	s.wait(ex, nil)
	s.abort(ex)
}

func faultStatus(code int) int {
	if code < 200 || code > 999 {
		return http.StatusInternalServerError
	}
	return code
}

// delay waits until the request is Options.Latency old, once. It reports
// false if the wait was cut short, in which case the request is logged
// unanswered and the connection dropped.
func (s *Server) delay(ex *exchange) bool {
	if ex.delayed {
		return true
	}
	ex.delayed = true
	left := time.Until(ex.answerAt)
	if left <= 0 {
		return true
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	if s.wait(ex, timer.C) {
		return true
	}
	s.logRequest(ex, 0, nil)
	s.abort(ex)
	return false
}

// wait blocks until tick fires (true), or the client leaves or the server
// closes (false). A nil tick waits only for the latter two.
func (s *Server) wait(ex *exchange, tick <-chan time.Time) bool {
	select {
	case <-tick:
		return true
	case <-ex.r.Context().Done():
	case <-s.done:
	}
	return false
}

// abort drops the connection without an answer. Returning from the handler
// instead would make net/http send an empty 200.
func (s *Server) abort(ex *exchange) {
	conn, _, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		// Hijacking is unsupported (never with httptest's HTTP/1 server);
		// a 502 is the closest visible failure.
		ex.w.WriteHeader(http.StatusBadGateway)
		return
	}
	resetConn(conn)
}

// resetConn closes with SO_LINGER=0 so the peer gets a RST ("connection reset
// by peer"), and closes beneath TLS so no close_notify is sent first.
func resetConn(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = c.Close()
}

// limiter is a fixed-window request counter. It uses the wall clock, not
// Options.Now, so tests that freeze Now for time checks don't freeze the
// window too.
type limiter struct {
	limit  int
	window time.Duration
	start  time.Time
	used   int
}

// take admits one request if the window has room. reset is the time left in
// the current window.
func (l *limiter) take(now time.Time) (ok bool, remaining int, reset time.Duration) {
	if l.start.IsZero() || now.Sub(l.start) >= l.window {
		l.start, l.used = now, 0
	}
	reset = l.start.Add(l.window).Sub(now)
	if l.used >= l.limit {
		return false, 0, reset
	}
	l.used++
	return true, l.limit - l.used, reset
}

func (l *limiter) reset() { l.start, l.used = time.Time{}, 0 }

// admit applies the rate limit, answering 429 itself when it refuses.
func (s *Server) admit(ex *exchange) bool {
	if s.opts.RateLimit <= 0 {
		return true
	}
	s.mu.Lock()
	ok, remaining, reset := s.limiter.take(time.Now())
	s.mu.Unlock()
	secs := ceilSeconds(reset)
	ex.rate = fmt.Sprintf("limit=%d,remaining=%d,reset=%d", s.opts.RateLimit, remaining, secs)
	if ok {
		return true
	}
	hdr := jsonHeader()
	hdr.Set("Retry-After", strconv.FormatInt(secs, 10))
	body := fmt.Sprintf(`{"request_time":%d,"error":"You have hit the API limit for measurements [measure:raw_rate]. Contact: support@librato.com to adjust this limit."}`,
		s.opts.Now().Unix())
	s.reply(ex, http.StatusTooManyRequests, hdr, []byte(body))
	return false
}

// ceilSeconds rounds up and never returns 0, since "retry after 0 seconds"
// would invite a client to hammer the limit.
func ceilSeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}
