package delivery

import (
	"fmt"
	"io"
	"net/http/httptrace"
	"sync"
	"testing"

	"github.com/influxdata/telegraf/testutil"
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

// A body larger than a usual request is not pooled for the next flush.
func TestPoolKeepsNoLargeBodies(t *testing.T) {
	for _, gzip := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gzip), func(t *testing.T) {
			s := New(Config{Gzip: gzip, Log: testutil.Logger{Quiet: true}})
			ms := manyMeasurements(15000)

			body, err := s.encode(ms, false)
			require.NoError(t, err)
			require.Greater(t, len(body.json), MaxPooledBody)
			body.release()
			for range 3 {
				p := s.bufs.Get().(*payload)
				require.LessOrEqual(t, cap(p.json)+cap(p.zipped), MaxPooledBody)
			}

			small, err := s.encode(ms[:300], false)
			require.NoError(t, err)
			require.LessOrEqual(t, cap(small.json)+cap(small.zipped), MaxPooledBody, "a usual body stays poolable")
			small.release()
		})
	}
}

// manyMeasurements makes n gauges of 20 sources with ordinary names.
func manyMeasurements(n int) []Measurement {
	series := make([]*Series, 20)
	for i := range series {
		series[i] = &Series{Source: fmt.Sprintf("host%02d", i)}
	}
	ms := make([]Measurement, n)
	for i := range ms {
		ms[i] = Measurement{Name: "cpu.usage_idle", Series: series[i%20], Time: 1_790_000_000 - int64(i/20), Value: float64(i)}
	}
	return ms
}
