package listener

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

const (
	legacyPath = "/v1/metrics"
	taggedPath = "/v1/measurements"
)

// probeBody answers GET /v1/metrics the way Librato answers a listing with
// nothing in it: client libraries' and -check's credential probes only look
// at the status and the shape.
var probeBody = []byte(`{"query":{"offset":0,"length":0,"found":0,"total":0},"metrics":[]}`)

var (
	errAuth        = libratoapi.RequestError(http.StatusUnauthorized, "Credentials are required to access this resource.")
	errNotFound    = libratoapi.RequestError(http.StatusNotFound, "not found")
	errMethod      = libratoapi.RequestError(http.StatusMethodNotAllowed, "method not allowed")
	errTooLarge    = libratoapi.RequestError(http.StatusRequestEntityTooLarge, "request body too large")
	errBadGzip     = libratoapi.RequestError(http.StatusBadRequest, "The gzip body could not be decoded")
	errReadBody    = libratoapi.RequestError(http.StatusBadRequest, "the request body could not be read")
	errLegacyMedia = libratoapi.RequestError(http.StatusUnsupportedMediaType,
		"Content-Type must be application/json or application/x-www-form-urlencoded")
	errTaggedMedia = libratoapi.RequestError(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	errEncoding    = libratoapi.RequestError(http.StatusUnsupportedMediaType, "Content-Encoding must be gzip or identity")
	// The 503s: Librato clients retry 5xx, so every way a request can fail
	// to reach the outputs ends here, never in a 2xx.
	errBusy        = libratoapi.RequestError(http.StatusServiceUnavailable, "too many undelivered requests, retry later")
	errUndelivered = libratoapi.RequestError(http.StatusServiceUnavailable, "the metrics were not delivered, retry later")
	errTimeout     = libratoapi.RequestError(http.StatusServiceUnavailable, "delivery timed out, retry later")
	errStopping    = libratoapi.RequestError(http.StatusServiceUnavailable, "shutting down, retry later")
	errInternal    = libratoapi.RequestError(http.StatusInternalServerError, "internal error")
)

// api is one of the two write endpoints.
type api int

const (
	legacyAPI api = iota
	taggedAPI
)

// request is the per-request scratch space, pooled: the body buffers and
// the decoded measurements are the bulk of a request's allocations.
type request struct {
	raw, plain bytes.Buffer
	ms         []libratoapi.Measurement
}

// ServeHTTP routes Librato's three endpoints.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.stats.requests.Incr(1)
	ok, err := l.creds.allowed(r)
	if err != nil {
		l.logErrorf("checking credentials: %v", err)
		l.answerError(w, errInternal)
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="Librato API"`)
		l.answerError(w, errAuth)
		return
	}
	switch r.URL.Path {
	case legacyPath:
		switch r.Method {
		case http.MethodPost:
			l.serveWrite(w, r, legacyAPI)
		case http.MethodGet, http.MethodHead:
			l.answer(w, http.StatusOK, probeBody)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			l.answerError(w, errMethod)
		}
	case taggedPath:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			l.answerError(w, errMethod)
			return
		}
		l.serveWrite(w, r, taggedAPI)
	default:
		l.answerError(w, errNotFound)
	}
}

// serveWrite handles both write endpoints: read, decode, validate the whole
// request, then hand it off and answer only after delivery.
func (l *Listener) serveWrite(w http.ResponseWriter, r *http.Request, which api) {
	received := l.now()
	form, aerr := mediaType(r.Header.Get("Content-Type"), which)
	if aerr != nil {
		l.answerError(w, aerr)
		return
	}
	req := l.getRequest()
	defer l.putRequest(req)
	body, aerr := l.readBody(w, r, req)
	if aerr != nil {
		l.answerError(w, aerr)
		return
	}
	switch {
	case which == taggedAPI:
		req.ms, aerr = libratoapi.DecodeTagged(body, req.ms[:0])
	case form:
		req.ms, aerr = libratoapi.DecodeLegacyForm(body, req.ms[:0])
	default:
		req.ms, aerr = libratoapi.DecodeLegacyJSON(body, req.ms[:0])
	}
	if aerr != nil {
		l.answerError(w, aerr)
		return
	}
	// Librato rejects a whole legacy request for one bad measurement, and
	// this listener does the same for tagged ones (see the README): the
	// answer then names the field, and nothing was stored.
	window := libratoapi.Window{MaxAge: time.Duration(l.MaxAge), MaxFuture: time.Duration(l.MaxFuture)}
	for i := range req.ms {
		m := &req.ms[i]
		if fe := libratoapi.Validate(m, received, window); fe != nil {
			if which == taggedAPI {
				l.answerError(w, fe.Tagged(m.Name))
			} else {
				l.answerError(w, fe.Legacy(m.Name))
			}
			return
		}
	}
	n := len(req.ms)
	if !l.tracker.admit(n) {
		l.answerError(w, errBusy)
		return
	}
	metrics := l.toMetrics(req.ms, received)
	switch l.tracker.deliver(metrics, time.Duration(l.DeliveryTimeout)) {
	case delivered:
		l.stats.measurements.Incr(int64(n))
		if which == taggedAPI {
			l.answer(w, http.StatusAccepted, libratoapi.TaggedSummary(n, n, 0, 0))
		} else {
			l.answer(w, http.StatusOK, []byte("{}"))
		}
	case rejected:
		l.answerError(w, errUndelivered)
	case timedOut:
		l.answerError(w, errTimeout)
	default:
		l.answerError(w, errStopping)
	}
}

// mediaType accepts what Librato accepted: JSON on both endpoints, and the
// form encoding Librato documented for /v1/metrics.
func mediaType(contentType string, which api) (form bool, aerr *libratoapi.Error) {
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err == nil && mt == "application/json":
		return false, nil
	case which == taggedAPI:
		return false, errTaggedMedia
	case err == nil && mt == "application/x-www-form-urlencoded":
		return true, nil
	default:
		return false, errLegacyMedia
	}
}

// readBody reads the body within max_body_size and, for gzip, applies the
// same limit to the decompressed bytes so a small bomb cannot grow memory.
func (l *Listener) readBody(w http.ResponseWriter, r *http.Request, req *request) ([]byte, *libratoapi.Error) {
	limit := int64(l.MaxBodySize)
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	gzipped := false
	for _, enc := range r.Header.Values("Content-Encoding") {
		switch strings.ToLower(strings.TrimSpace(enc)) {
		case "", "identity":
		case "gzip", "x-gzip":
			if gzipped {
				return nil, errEncoding // gzip twice: nobody sends that
			}
			gzipped = true
		default:
			return nil, errEncoding
		}
	}
	if aerr := readLimited(&req.raw, http.MaxBytesReader(w, r.Body, limit), limit, errReadBody); aerr != nil {
		return nil, aerr
	}
	if !gzipped {
		return req.raw.Bytes(), nil
	}
	zr, err := gzip.NewReader(&req.raw)
	if err != nil {
		return nil, errBadGzip
	}
	defer zr.Close()
	if aerr := readLimited(&req.plain, zr, limit, errBadGzip); aerr != nil {
		return nil, aerr
	}
	return req.plain.Bytes(), nil
}

// readLimited reads src into dst, failing with 413 beyond limit and with
// other on any other read error.
func readLimited(dst *bytes.Buffer, src io.Reader, limit int64, other *libratoapi.Error) *libratoapi.Error {
	_, err := dst.ReadFrom(io.LimitReader(src, limit+1))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errTooLarge
	case err != nil:
		return other
	case int64(dst.Len()) > limit:
		return errTooLarge
	}
	return nil
}

// toMetrics maps measurements to Telegraf metrics: one per measurement,
// named after it, with field "value" or the summary fields, the legacy
// source as a tag and tagged tags lower-cased (as Librato stores them).
func (l *Listener) toMetrics(ms []libratoapi.Measurement, received time.Time) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, len(ms))
	for i := range ms {
		m := &ms[i]
		t := received
		if m.Time != 0 {
			t = time.Unix(m.Time, 0)
		}
		typ := telegraf.Gauge
		if m.Kind == libratoapi.Counter {
			typ = telegraf.Counter
		}
		tm := metric.New(m.Name, nil, nil, t, typ)
		switch m.Kind {
		case libratoapi.Tagged:
			for _, tag := range m.Tags {
				tm.AddTag(strings.ToLower(tag.Key), strings.ToLower(tag.Value))
			}
		default:
			if m.Source != "" {
				tm.AddTag(l.SourceTag, m.Source)
			}
		}
		addFields(tm, m)
		out = append(out, tm)
	}
	return out
}

func addFields(tm telegraf.Metric, m *libratoapi.Measurement) {
	if !m.HasCount {
		tm.AddField("value", m.Value)
		return
	}
	tm.AddField("count", m.Count)
	tm.AddField("sum", m.Sum)
	if m.HasMin {
		tm.AddField("min", m.Min)
	}
	if m.HasMax {
		tm.AddField("max", m.Max)
	}
	if m.HasSumSquares {
		tm.AddField("sum_squares", m.SumSquares)
	}
	if m.HasLast {
		tm.AddField("last", m.Last)
	}
	if m.HasStddev {
		tm.AddField("stddev", m.Stddev)
	}
}

func (l *Listener) answer(w http.ResponseWriter, status int, body []byte) {
	l.stats.response(status)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		// The client is gone; a 2xx it did not read is a lost
		// acknowledgement, and its retry a duplicate, never a loss.
		l.logDebugf("writing the %d answer: %v", status, err)
	}
}

func (l *Listener) answerError(w http.ResponseWriter, e *libratoapi.Error) {
	l.answer(w, e.Status, e.Body)
}

func (l *Listener) getRequest() *request {
	if req, ok := l.bufs.Get().(*request); ok {
		return req
	}
	return &request{}
}

// putRequest keeps scratch space for the next request unless it grew past
// what a usual request needs, so one huge request does not pin memory.
func (l *Listener) putRequest(req *request) {
	if req.raw.Cap()+req.plain.Cap() > maxPooledBytes || cap(req.ms) > maxPooledMeasurements {
		return
	}
	req.raw.Reset()
	req.plain.Reset()
	clear(req.ms)
	req.ms = req.ms[:0]
	l.bufs.Put(req)
}

func (l *Listener) logErrorf(format string, args ...any) {
	if l.Log != nil {
		l.Log.Errorf(format, args...)
	}
}

func (l *Listener) logDebugf(format string, args ...any) {
	if l.Log != nil {
		l.Log.Debugf(format, args...)
	}
}
