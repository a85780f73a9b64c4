package librato

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDebugLogShowsNoCredentials: with debug on, the line logged per request
// names the URL without query values and the answer without credentials.
func TestDebugLogShowsNoCredentials(t *testing.T) {
	srv := newEchoServer(t)
	l, logger := debugPlugin(t, srv.URL+"/v1/metrics?key="+typoToken)
	err := l.Write(parseLP(t, "cpu,host=h usage=1 1700000000000000000\n"))
	require.Error(t, err)
	text := logText(logger) + err.Error()
	require.Contains(t, text, "POST ")
	require.NotContains(t, text, typoToken)
	requireNoCredentials(t, text)
}

// newEchoServer answers 400 with a page echoing the request's URL and
// Authorization header, as a misbehaving proxy might.
func newEchoServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, "<html>bad request %s %s (%s)</html>", r.URL, auth, strings.TrimRight(strings.TrimPrefix(auth, "Basic "), "="))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestWriteErrorsShowNoCredentials: the error a Write returns, which
// Telegraf logs, shows no token an SSO redirect or a proxy page echoed.
func TestWriteErrorsShowNoCredentials(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"SSO redirect", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Location", "https://"+testUser+":"+testToken+"@sso.example/login?token="+ssoSecret+"&user="+testUser)
			w.WriteHeader(http.StatusFound)
		}, `"https://sso.example/login?token=[redacted]&user=[redacted]"`},
		{"proxy page linking to an SSO", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = fmt.Fprintf(w, `<a href="https://sso.example/login?ticket=%s">log in</a>`, ssoSecret)
		}, "ticket=[redacted]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			l, logger := debugPlugin(t, srv.URL+"/v1/metrics")
			err := l.Write(parseLP(t, "cpu,host=h usage=1 1700000000000000000\n"))
			require.Error(t, err)
			text := err.Error() + "\n" + logText(logger)
			t.Log(text)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, text, ssoSecret)
			requireNoCredentials(t, text)
		})
	}
}
