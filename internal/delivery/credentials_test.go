package delivery

import (
	"encoding/base64"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// TestCredentialsLifetime: the secrets are read by the first flush after
// Connect and kept while flushes succeed; a failed flush makes the next one
// read them again (a rotated dynamic secret is picked up there), and Close
// destroys what was kept.
func TestCredentialsLifetime(t *testing.T) {
	var reads atomic.Int64
	tokens := []string{"token-one", "token-two"}
	token := config.NewSecret([]byte("@{store:token}"))
	require.NoError(t, token.Link(map[string]telegraf.ResolveFunc{
		"@{store:token}": func() ([]byte, bool, error) {
			// Dynamic: resolved by Link and on every Get. Link and the
			// first Get see the first token, later Gets the rotated one.
			n := int(reads.Add(1))
			return []byte(tokens[min(n-1, 1)]), true, nil
		},
	}))
	reads.Store(0) // Link's own resolution
	user := config.NewSecret([]byte(testUser))

	var seen []string
	refuse := false
	api := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		seen = append(seen, req.Header.Get("Authorization"))
		if refuse {
			return answer(req, http.StatusUnauthorized, `{"errors":{"request":["Credentials are required to access this resource."]}}`), nil
		}
		return answer(req, http.StatusOK, `{}`), nil
	})
	clock := &fakeClock{now: testEpoch()}
	s := New(Config{
		User: &user, Token: &token,
		Timeout: 5 * time.Second, RetryBudget: 5 * time.Second, MaxRetryAfter: time.Minute,
		MeasurementsPerRequest: 300, Concurrency: 1,
		Transport: api, UserAgent: "test", Clock: clock,
		Log: testutil.Logger{Quiet: true}, Stats: statsWith(&testStat{}),
	})
	require.NoError(t, s.Connect())
	require.Zero(t, reads.Load(), "Connect reads no secret: a secret store may need the network")

	basic := func(tok string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+tok))
	}
	deliver := func() error {
		_, err := s.Deliver(manyMeasurements(10), Endpoint{URL: "https://librato.test/v1/metrics"}, clock.Now())
		return err
	}
	for range 3 {
		require.NoError(t, deliver())
	}
	require.Equal(t, int64(1), reads.Load(), "successful flushes share one reading")

	refuse = true
	require.Error(t, deliver())
	refuse = false
	require.NoError(t, deliver()) // reads again, and gets the rotated token
	require.NoError(t, deliver())
	require.Equal(t, int64(2), reads.Load())
	require.Equal(t, []string{basic(tokens[0]), basic(tokens[0]), basic(tokens[0]), basic(tokens[0]), basic(tokens[1]), basic(tokens[1])}, seen)

	kept := s.creds
	s.Close()
	require.Nil(t, s.creds)
	require.False(t, kept.header.IsAlive(), "Close destroys the locked header")
}
