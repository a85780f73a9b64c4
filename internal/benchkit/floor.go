package benchkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-d22a899f/librato/internal/delivery"
)

// capture is an in-process API that keeps every body it is sent, for the
// floor to post again.
type capture struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newCapture() *capture {
	c := &capture{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.bodies = append(c.bodies, body)
		c.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	return c
}

func (c *capture) URL() string { return c.srv.URL + "/v1/metrics" }
func (c *capture) Close()      { c.srv.Close() }

// take returns the bodies received since the last take.
func (c *capture) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bodies
	c.bodies = nil
	return b
}

// floorClient is the least an HTTP client can do to post a body: a pooled
// transport with as many connections as the plugin's concurrency, one
// header map shared by every request (net/http only reads it) and the
// answer drained so the connection is reused.
type floorClient struct {
	url    string
	client *http.Client
	header http.Header
}

func newFloorClient(url string) *floorClient {
	t := &http.Transport{
		MaxIdleConns:        DefaultConcurrentWrites,
		MaxIdleConnsPerHost: DefaultConcurrentWrites,
		WriteBufferSize:     64 << 10, // as the plugin's: a body in one write
	}
	auth := base64.StdEncoding.EncodeToString([]byte(User + ":" + Token))
	return &floorClient{
		url:    url,
		client: &http.Client{Transport: t},
		header: http.Header{
			"Authorization": {"Basic " + auth},
			"Content-Type":  {"application/json"},
			"User-Agent":    {"librato-bench-floor"},
		},
	}
}

func (f *floorClient) close() { f.client.CloseIdleConnections() }

// postAll posts bodies, DefaultConcurrentWrites at a time, and measures it
// as writeBatch measures a plugin's WriteBatch.
func (f *floorClient) postAll(bodies [][]byte) (Batch, error) {
	var b Batch
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.Mallocs, b.Bytes = ms.Mallocs, ms.TotalAlloc
	cpu, wall := cpuTime(), time.Now()

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, DefaultConcurrentWrites)
	labels := pprof.WithLabels(context.Background(), pprof.Labels("phase", "write"))
	for w := range min(DefaultConcurrentWrites, len(bodies)) {
		wg.Go(func() {
			pprof.SetGoroutineLabels(labels) // as ours: see writeBatch
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				if err := f.post(bodies[i]); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()

	b.Wall, b.CPU = time.Since(wall), cpuTime()-cpu
	runtime.ReadMemStats(&ms)
	b.Mallocs, b.Bytes = ms.Mallocs-b.Mallocs, ms.TotalAlloc-b.Bytes
	for _, err := range errs {
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func (f *floorClient) post(body []byte) error {
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = f.header
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("floor: the fake API answered %d", resp.StatusCode)
	}
	return err
}

// encodeRepeats: encoding a chunk takes a few milliseconds; repeating it
// keeps the reading well above getrusage's granularity and noise.
const encodeRepeats = 5

// encodeAlone decodes the legacy bodies of one chunk back into
// measurements (untimed) and times the plugin's encoder making them again,
// body by body, into a reused buffer as the plugin's pool gives it. It
// also counts the bodies' bytes, plain and gzipped at the default level as
// content_encoding = "gzip" sends them.
func encodeAlone(res *JobResult, perBatch [][][]byte) error {
	var reqs [][]delivery.Measurement
	series := make(map[string]*delivery.Series)
	gauges := 0
	zw := gzip.NewWriter(io.Discard)
	var zipped countingWriter
	for _, bodies := range perBatch {
		for _, body := range bodies {
			var doc struct {
				Gauges []struct {
					Name, Source string
					Value        float64
					MeasureTime  int64 `json:"measure_time"`
				}
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				return fmt.Errorf("floor: decoding a captured body: %w", err)
			}
			pts := make([]delivery.Measurement, len(doc.Gauges))
			for i, g := range doc.Gauges {
				s := series[g.Source]
				if s == nil {
					s = &delivery.Series{Source: g.Source}
					series[g.Source] = s
				}
				pts[i] = delivery.Measurement{Name: g.Name, Series: s, Time: g.MeasureTime, Value: g.Value}
			}
			reqs = append(reqs, pts)
			gauges += len(pts)
			res.BodyBytes += int64(len(body))
			zw.Reset(&zipped)
			if _, err := zw.Write(body); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
		}
	}
	res.GzipBytes += zipped.n
	buf := make([]byte, 0, delivery.MaxPooledBody)
	runtime.GC() //nolint:revive // the decoding's garbage is not the encoder's
	cpu := cpuTime()
	for range encodeRepeats {
		for _, pts := range reqs {
			buf = delivery.EncodeLegacy(buf[:0], pts)
		}
	}
	res.EncodeCPU += (cpuTime() - cpu) / encodeRepeats
	res.EncodeGauges += gauges
	return nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
