package librato

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnresolvedDefaultHost(t *testing.T) {
	notFound := func(name string) error {
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"default host", notFound("metrics-api.librato.com"), true},
		{"fully qualified, other case", notFound("Metrics-API.Librato.com."), true},
		{"wrapped as the HTTP client does", fmt.Errorf("flush: %w", &net.OpError{Op: "dial", Err: notFound(defaultAPIHost)}), true},
		{"another host", notFound("librato.example.net"), false},
		{"resolver timeout", &net.DNSError{Err: "i/o timeout", Name: defaultAPIHost, IsTimeout: true}, false},
		{"not DNS", errors.New("metrics-api.librato.com: connection refused"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, unresolvedDefaultHost(tc.err))
		})
	}
}

// dnsFailure answers every request as a resolver that does not know the
// host would.
type dnsFailure struct{}

func (dnsFailure) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: req.URL.Hostname(), IsNotFound: true}}
}

// When Librato's own host does not resolve, -check and a failed flush point
// to the README's "Service status"; another host's DNS failure is a
// setting to check.
func TestServiceStatusHint(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		hint      bool
	}{
		{"default api_url", "", true},
		{"other host", "https://librato.example.net/v1/metrics", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := unstarted()
			l.APIURL = tc.url
			l.transport = dnsFailure{}
			l.RetryBudget = 0 // one attempt: the answer would not change
			require.NoError(t, l.Init())
			require.NoError(t, l.Connect())
			t.Cleanup(func() { require.NoError(t, l.Close()) })

			_, checkErr := l.Check(context.Background())
			require.ErrorContains(t, checkErr, "is not known")
			writeErr := l.Write(parseLP(t, "cpu,host=web01 idle=99 1790000000000000000\n"))
			require.ErrorContains(t, writeErr, "no such host")
			for _, err := range []error{checkErr, writeErr} {
				if tc.hint {
					require.ErrorContains(t, err, `see "Service status"`)
					require.ErrorContains(t, err, "#service-status")
				} else {
					require.NotContains(t, err.Error(), "Service status")
				}
			}
			require.NotContains(t, checkErr.Error()+writeErr.Error(), testToken)
		})
	}
}
