package librato

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

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
