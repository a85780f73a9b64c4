package delivery

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
)

// stallingAPI stalls its first answer as stall says, then answers 200 (a
// stalled body comes with a 503, which is retried; a 200 status alone
// delivers). Like net/http's transport, it gives up on a stalled request
// when the request's context ends, and records when that was.
type stallingAPI struct {
	stall string // "headers": no answer at all; "body": a body that never ends

	mu      sync.Mutex
	calls   int
	gaveUp  time.Time
	lastErr error
}

func (a *stallingAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, req.Body)
	a.mu.Lock()
	a.calls++
	first := a.calls == 1
	a.mu.Unlock()
	if !first {
		return answer(req, http.StatusOK, "{}"), nil
	}
	if a.stall == "headers" {
		<-req.Context().Done()
		a.giveUp(req.Context().Err())
		return nil, req.Context().Err()
	}
	resp := answer(req, http.StatusServiceUnavailable, "")
	resp.Body = stalledBody{ctx: req.Context(), api: a}
	return resp, nil
}

func (a *stallingAPI) giveUp(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gaveUp, a.lastErr = time.Now(), err
}

type stalledBody struct {
	ctx context.Context
	api *stallingAPI
}

func (b stalledBody) Read([]byte) (int, error) {
	<-b.ctx.Done()
	b.api.giveUp(b.ctx.Err())
	return 0, b.ctx.Err()
}

func (stalledBody) Close() error { return nil }

// TestEachRequestEndsWithinTimeout: timeout bounds each request, its answer's
// body included, not only the Write: a stalled request fails after timeout
// and is sent again within retry_budget, so the Write still delivers.
// synctest's clock makes "after exactly timeout" exact, with no waiting.
func TestEachRequestEndsWithinTimeout(t *testing.T) {
	warmUpMemguard(t)
	for _, stall := range []string{"headers", "body"} {
		t.Run(stall, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &stallingAPI{stall: stall}
				s, stats := newTestSender(t, api, nil) // the real clock: synctest's
				s.cfg.Timeout, s.cfg.RetryBudget = 5*time.Second, 30*time.Second
				stats.Retries.Set(0) // selfstat's registry is the process's
				start := time.Now()
				ms := []Measurement{{Name: "a", Series: &Series{Source: "web"}, Time: start.Unix() - 1, Value: 1}}

				res, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/metrics"}, start)
				require.NoError(t, err)
				require.Equal(t, []bool{true}, res.Settled)
				require.Equal(t, 2, api.calls, "the stalled request, then the retry")
				require.Equal(t, 5*time.Second, api.gaveUp.Sub(start), "the stalled request ends at timeout")
				require.ErrorIs(t, api.lastErr, context.DeadlineExceeded)
				require.Equal(t, int64(1), stats.Retries.Get())
				require.Less(t, time.Since(start), 5*time.Second+backoffMax, "retried after one back-off")
			})
		})
	}
}

// TestTimeoutErrorNamesTheSetting: a request that ends at timeout says so,
// as http.Client.Timeout's "(Client.Timeout exceeded while awaiting
// headers)" did; net/http alone says only "context deadline exceeded".
func TestTimeoutErrorNamesTheSetting(t *testing.T) {
	warmUpMemguard(t)
	synctest.Test(t, func(t *testing.T) {
		api := &stallingAPI{stall: "headers"}
		s, _ := newTestSender(t, api, nil)
		s.cfg.Timeout, s.cfg.RetryBudget = 5*time.Second, time.Second
		start := time.Now()
		ms := []Measurement{{Name: "a", Series: &Series{Source: "web"}, Time: start.Unix() - 1, Value: 1}}

		_, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/metrics"}, start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "no answer within timeout, 5s")
		require.Equal(t, 1, api.calls)
	})
}

// TestTimeoutNeverOutlastsTheWrite: a request started late in the Write
// ends at the Write's deadline (retry_budget + timeout after the Write
// began), not a full timeout after it was sent.
func TestTimeoutNeverOutlastsTheWrite(t *testing.T) {
	warmUpMemguard(t)
	synctest.Test(t, func(t *testing.T) {
		api := &stallingAPI{stall: "headers"}
		s, _ := newTestSender(t, api, nil)
		s.cfg.Timeout, s.cfg.RetryBudget = 5*time.Second, 5*time.Second
		start := time.Now().Add(-8 * time.Second) // the Write began 8s ago
		ms := []Measurement{{Name: "a", Series: &Series{Source: "web"}, Time: start.Unix() - 1, Value: 1}}

		res, err := s.Deliver(ms, Endpoint{URL: "https://librato.test/v1/metrics"}, start)
		require.ErrorContains(t, err, "deadline exceeded")
		require.Equal(t, []bool{false}, res.Settled, "stays buffered")
		require.Equal(t, 10*time.Second, api.gaveUp.Sub(start), "at the Write's deadline, 2s after it was sent")
		require.Equal(t, 1, api.calls, "no request starts within a second of the deadline")
		require.NotContains(t, err.Error(), "within timeout", "the Write's time ended it, not timeout")
	})
}

// warmUpMemguard starts, outside any bubble, the goroutine memguard starts
// on first use and keeps for the life of the process: in a bubble it would
// be a goroutine left behind.
func warmUpMemguard(t *testing.T) {
	t.Helper()
	s := config.NewSecret([]byte(testToken))
	b, err := s.Get()
	require.NoError(t, err)
	b.Destroy()
	s.Destroy()
}
