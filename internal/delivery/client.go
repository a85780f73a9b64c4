package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"
)

// MaxResponseRead bounds what is read of any response body: enough for
// Librato's error JSON, small enough that a huge error page costs nothing.
const MaxResponseRead = 16 << 10

// httpTransport is the transport of the TLS and proxy settings (either may
// be nil: the defaults).
func (s *Sender) httpTransport() (*http.Transport, error) {
	var tlsConfig *tls.Config
	if s.cfg.TLS != nil {
		c, err := s.cfg.TLS.TLSConfig()
		if err != nil {
			return nil, fmt.Errorf("invalid TLS settings: %w", err)
		}
		tlsConfig = c
	}
	proxyFunc := http.ProxyFromEnvironment // as the built-in plugin does
	if s.cfg.Proxy != nil {
		f, err := s.cfg.Proxy.Proxy()
		if err != nil {
			return nil, fmt.Errorf("invalid proxy settings: %w", err)
		}
		if f != nil {
			proxyFunc = f
		}
	}
	return &http.Transport{
		Proxy:                 proxyFunc,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          s.cfg.Concurrency,
		MaxIdleConnsPerHost:   s.cfg.Concurrency,
		WriteBufferSize:       64 << 10, // a whole request body in one write
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   s.cfg.Timeout,
		ResponseHeaderTimeout: s.cfg.Timeout,
	}, nil
}

// neverFollow hands a redirect back as the answer: following it would turn
// the POST into a bodyless GET and could take the credentials elsewhere.
func neverFollow(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// seq is the flush's logical clock: the outcome carries its readings just
// before the request was handed to the transport and after the answer was
// read (see evidence.go).
func (s *Sender) post(ctx context.Context, r *Credentials, ep Endpoint, body *payload, n int, seq *atomic.Uint64) outcome {
	writes := body.track()
	defer writes.doReturned()
	req, err := s.newRequest(ctx, r, ep.URL, writes)
	if err != nil {
		return outcome{kind: halt, err: err}
	}
	start := s.clock.Now()
	s.stats.Requests.Incr(1)
	sent := seq.Add(1)
	resp, err := s.client.Do(req)
	elapsed := s.clock.Now().Sub(start)
	s.stats.RequestTime.Incr(elapsed.Nanoseconds())
	if err != nil {
		// The error's text repeats the URL, whose query may hold a key.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = fmt.Errorf("%s %s: %w", ue.Op, r.secrets.Redact(ue.URL), ue.Err)
		}
		if s.cfg.Debug {
			s.log.Info(r.secrets.Redact(fmt.Sprintf("POST %s: %d measurements, %d bytes: failed after %s: %v", ep.URL, n, len(body.wire), elapsed, err)))
		}
		return outcome{kind: transient, err: fmt.Errorf("sending to librato: %w", err), url: ep.URL, measurements: n, sent: sent, answered: seq.Add(1)}
	}
	defer resp.Body.Close()
	text, truncated, readErr := s.readResponse(r, resp, ep.Tagged)
	if s.cfg.Debug {
		s.log.Info(r.secrets.Redact(fmt.Sprintf("POST %s: %d measurements, %d bytes: %s -> %d in %s: %s",
			ep.URL, n, len(body.wire), Excerpt(body.json), resp.StatusCode, elapsed, Excerpt(text))))
	}
	now := s.clock.Now()
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", string(r.Redact([]byte(loc))))
	}
	cut := readErr
	if cut == nil && truncated {
		cut = fmt.Errorf("the answer is longer than the %d bytes read", MaxResponseRead)
	}
	o := unfinished(classify(resp.StatusCode, resp.Header, text, ep.Tagged, now), cut)
	if o.status == http.StatusUnauthorized && s.cfg.CredentialsInURL {
		o.err = fmt.Errorf("librato answered 401 (%s): %s", AdviceCredentialsInURL, Excerpt(text))
	}
	o.url, o.measurements, o.sent, o.answered = ep.URL, n, sent, seq.Add(1)
	// The reason is decoded JSON: \u-escaped secrets are plain text now.
	o.reason = string(r.Redact([]byte(o.reason)))
	pause, budget := s.admission.observe(resp.Header, now)
	if budget.ok {
		s.stats.RateLimit.Set(budget.limit)
		s.stats.RateRemaining.Set(budget.remaining)
	}
	if o.kind == delivered {
		o.retryAfter = max(spentBudgetReset(resp.Header, now), pause) // the budget is (nearly) spent: pause before the next
		if ep.Tagged {
			var read bool
			o.apiFailed, o.apiErrors, read = acceptedWithFailures(text)
			// A summary cut off (by the read limit or the connection) or
			// not JSON shows no "summary without failures": no evidence.
			o.summaryUnread = !read || readErr != nil || truncated
		}
	}
	s.admission.pause(o.retryAfter)
	return o
}

// readResponse returns the (redacted) start of the response body, whether
// the body went on past MaxResponseRead, and why reading it stopped early,
// if it did. A plain success needs none of it: the body is only drained,
// within the limit, so the connection can be reused.
func (s *Sender) readResponse(r *Credentials, resp *http.Response, tagged bool) ([]byte, bool, error) {
	body := io.LimitReader(resp.Body, MaxResponseRead+1)
	if resp.StatusCode/100 == 2 && !s.cfg.Debug && !tagged {
		n, err := io.Copy(io.Discard, body)
		return nil, n > MaxResponseRead, err
	}
	raw, err := io.ReadAll(body)
	truncated := len(raw) > MaxResponseRead
	if truncated {
		raw = raw[:MaxResponseRead]
	}
	return r.Redact(raw), truncated, err
}

func (s *Sender) newRequest(ctx context.Context, r *Credentials, target string, writes *bodyWrites) (*http.Request, error) {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: writes.wrote})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, writes.body())
	if err != nil {
		return nil, fmt.Errorf("creating request: %w", err)
	}
	req.ContentLength = int64(len(writes.p.wire))
	req.GetBody = func() (io.ReadCloser, error) { return writes.body(), nil }
	s.SetRequestHeaders(req.Header, r, true, s.cfg.Gzip)
	return req, nil
}

// SetRequestHeaders sets the headers every request to Librato carries, for
// deliveries and the credential check alike: the credentials, the user
// agent and, when there is a body, its type and (gzipped) encoding.
func (s *Sender) SetRequestHeaders(h http.Header, c *Credentials, hasBody, gzipped bool) {
	h["Authorization"] = c.authorization()
	h["User-Agent"] = s.userAgent
	if hasBody {
		h["Content-Type"] = contentTypeJSON
	}
	if gzipped {
		h["Content-Encoding"] = contentEncodingGzip
	}
}

var (
	contentTypeJSON     = []string{"application/json"}
	contentEncodingGzip = []string{"gzip"}
)
