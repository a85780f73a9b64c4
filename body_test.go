package librato

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// The pooled request body goes back to the pool only when nothing can read
// it any more: Do has returned, and every body the transport opened (the
// first, and each one GetBody made for a resend) has been written or given
// up on.

func TestPayloadLifetimeWithResends(t *testing.T) {
	pool := &sync.Pool{}
	p := &payload{json: []byte(`{"gauges":[]}`), pool: pool}
	p.wire = p.json
	p.refs.Store(1) // the batch's own reference

	w := p.track()
	_ = w.body()       // NewRequest's body
	resent := w.body() // what req.GetBody hands the transport for a resend
	p.release()        // the batch is done with it

	w.wrote(httptrace.WroteRequestInfo{Err: io.ErrUnexpectedEOF}) // the first write failed
	w.doReturned()
	require.Equal(t, int32(1), p.refs.Load(), "the resent body is still being written")

	got, err := io.ReadAll(resent)
	require.NoError(t, err)
	require.JSONEq(t, `{"gauges":[]}`, string(got))
	w.wrote(httptrace.WroteRequestInfo{})
	require.Equal(t, int32(0), p.refs.Load(), "released once every write finished")
}

func TestPayloadLifetimeWithoutWrite(t *testing.T) {
	p := &payload{json: []byte(`{}`), pool: &sync.Pool{}}
	p.wire = p.json
	p.refs.Store(1)
	w := p.track()
	_ = w.body() // the dial failed: the transport never wrote it
	p.release()
	w.doReturned()
	require.Equal(t, int32(1), p.refs.Load(), "a body that never reported back is left to the GC, never reused")
}

// TestEarlyAnswersDoNotCorruptPooledBodies: the server answers half the
// requests before reading their bodies, while the next flushes reuse pooled
// buffers; every body the server does read is whole and valid. (On loopback
// the kernel takes a whole body at once, so this checks the end-to-end path;
// the accounting above is what proves the release rule: releasing on Do's
// return alone fails TestPayloadLifetimeWithResends.)
func TestEarlyAnswersDoNotCorruptPooledBodies(t *testing.T) {
	var n, bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusOK) // answer first; the body is left unread
			return
		}
		var doc struct {
			Gauges []json.RawMessage `json:"gauges"`
		}
		if err := json.NewDecoder(r.Body).Decode(&doc); err != nil || len(doc.Gauges) == 0 {
			bad.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	l := newPlugin(t, srv.URL+legacyPath)
	metrics, _ := workload(3000)
	for range 10 {
		require.NoError(t, l.Write(metrics))
	}
	require.Positive(t, n.Load())
	require.Zero(t, bad.Load(), "a body was read while being reused")
}
