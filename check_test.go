package librato

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

const proxyPassword = "pr0xy-pa55word"

// TestCheck: the credential check names the setting to fix for every way a
// configuration can be wrong, says OK with the account's API mode otherwise,
// stores nothing, and never shows the credentials.
func TestCheck(t *testing.T) {
	onPOST := func(a fakelibrato.Action) func(int, *fakelibrato.Received) fakelibrato.Action {
		return func(_ int, r *fakelibrato.Received) fakelibrato.Action {
			if r.Method == http.MethodPost {
				return a
			}
			return fakelibrato.Action{}
		}
	}
	always := func(a fakelibrato.Action) func(int, *fakelibrato.Received) fakelibrato.Action {
		return func(int, *fakelibrato.Received) fakelibrato.Action { return a }
	}
	// url picks api_url from the running fake.
	root := func(f *fakelibrato.Server) string { return f.URL() }
	legacyURL := func(f *fakelibrato.Server) string { return f.LegacyURL() }
	taggedURL := func(f *fakelibrato.Server) string { return f.TaggedURL() }

	tests := []struct {
		name      string
		fake      fakelibrato.Options
		api       string
		url       func(*fakelibrato.Server) string
		configure func(t *testing.T, l *Librato, f *fakelibrato.Server)
		want      []string // in the OK line, or in the error if wantErr
		wantErr   bool
	}{
		{
			name: "legacy account, auto",
			fake: fakelibrato.Options{TaggedDisabled: true}, api: apiAuto, url: root,
			want: []string{
				"OK: http://127.0.0.1:", "record access", "no tag-based measurements",
				`api = "auto" will write gauges with sources to http://127.0.0.1:`,
			},
		},
		{
			name: "legacy account, legacy",
			fake: fakelibrato.Options{TaggedDisabled: true}, api: apiLegacy, url: legacyURL,
			want: []string{"OK: ", "no tag-based measurements", `(api = "legacy")`},
		},
		{
			name: "legacy account, tagged",
			fake: fakelibrato.Options{TaggedDisabled: true}, api: apiTagged, url: taggedURL,
			want: []string{"no tag-based measurements", `set api = "legacy" or "auto"`}, wantErr: true,
		},
		{
			name: "tagged account, auto",
			api:  apiAuto, url: root,
			want: []string{"OK: ", "takes tag-based measurements", `api = "auto" will write tags to http://127.0.0.1:`, "/v1/measurements"},
		},
		{
			name: "tagged account, tagged",
			api:  apiTagged, url: taggedURL,
			want: []string{"OK: ", `takes tag-based measurements (api = "tagged")`},
		},
		{
			name: "tagged account, legacy",
			api:  apiLegacy, url: legacyURL,
			want: []string{"OK: ", `but api = "legacy" writes gauges with sources`},
		},
		{
			name: "TLS with tls_ca",
			fake: fakelibrato.Options{TLS: true}, api: apiAuto, url: root,
			configure: func(t *testing.T, l *Librato, f *fakelibrato.Server) { l.TLSCA = writeCA(t, f) },
			want:      []string{"OK: https://127.0.0.1:"},
		},
		{
			name: "401",
			api:  apiAuto, url: root,
			configure: func(_ *testing.T, l *Librato, _ *fakelibrato.Server) {
				l.APIToken = config.NewSecret([]byte(testToken + "-wrong"))
			},
			want: []string{"401", "api_user", "api_token"}, wantErr: true,
		},
		{
			name: "401 echoing the credentials",
			fake: fakelibrato.Options{Fault: always(fakelibrato.Action{Status: 401,
				Body: []byte(`{"errors":{"request":["bad credentials ` + testUser + ":" + testToken + `"]}}`)})},
			api: apiAuto, url: root,
			want: []string{"401", "[redacted]:[redacted]", "api_user"}, wantErr: true,
		},
		{
			name: "403 read-only token",
			fake: fakelibrato.Options{Fault: onPOST(fakelibrato.Action{Status: 403,
				Body: []byte(`{"errors":{"request":["You do not have permission to access this resource"]}}`)})},
			api: apiAuto, url: root,
			want: []string{"POST http://127.0.0.1:", "/v1/measurements was 403", "record access"}, wantErr: true,
		},
		{
			name: "403 read-only token, legacy account",
			fake: fakelibrato.Options{TaggedDisabled: true, Fault: func(_ int, r *fakelibrato.Received) fakelibrato.Action {
				if r.Path == "/v1/metrics" && r.Method == http.MethodPost {
					return fakelibrato.Action{Status: 403, Body: []byte(`{"errors":{"request":["forbidden"]}}`)}
				}
				return fakelibrato.Action{}
			}},
			api: apiAuto, url: root,
			want: []string{"/v1/metrics was 403", "record access"}, wantErr: true,
		},
		{
			name: "403 plain HTTP",
			fake: fakelibrato.Options{RequireHTTPS: true}, api: apiAuto, url: root,
			want: []string{"403", "set api_url to https://"}, wantErr: true,
		},
		{
			name: "wrong host: closed port",
			api:  apiAuto, url: func(*fakelibrato.Server) string { return "http://" + closedAddr(t) },
			want: []string{"connection refused", "check the host and port of api_url"}, wantErr: true,
		},
		{
			name: "redirect",
			fake: fakelibrato.Options{Fault: always(fakelibrato.Action{Status: 301,
				Header: http.Header{"Location": {"https://elsewhere.example/v1/metrics"}}})},
			api: apiAuto, url: root,
			want: []string{"301", `"https://elsewhere.example/v1/metrics"`, "not followed", "api_url"}, wantErr: true,
		},
		{
			name: "404: wrong path",
			api:  apiAuto, url: func(f *fakelibrato.Server) string { return f.URL() + "/librato/v1" },
			want: []string{"/librato/v1/metrics?length=1 answered 404", "path of api_url"}, wantErr: true,
		},
		{
			name: "200 that is not Librato",
			fake: fakelibrato.Options{Fault: always(fakelibrato.Action{Status: 200,
				Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte("<html>Welcome to the hotel wifi</html>")})},
			api: apiAuto, url: root,
			want: []string{"not the Librato API", "api_url"}, wantErr: true,
		},
		{
			name: "rate limited",
			fake: fakelibrato.Options{Fault: always(fakelibrato.Action{Status: 429})},
			api:  apiAuto, url: root,
			want: []string{"429", "rate limited", "try again later"}, wantErr: true,
		},
		{
			name: "TLS: unknown CA",
			fake: fakelibrato.Options{TLS: true}, api: apiAuto, url: root,
			want: []string{"certificate", "tls_ca", "insecure_skip_verify"}, wantErr: true,
		},
		{
			name: "TLS: name mismatch",
			fake: fakelibrato.Options{TLS: true}, api: apiAuto, url: root,
			configure: func(t *testing.T, l *Librato, f *fakelibrato.Server) {
				l.TLSCA = writeCA(t, f)
				l.ServerName = "metrics-api.wrong.example"
			},
			want: []string{"not valid for this name", "tls_server_name"}, wantErr: true,
		},
		{
			name: "TLS: plain HTTP server",
			api:  apiAuto, url: func(f *fakelibrato.Server) string { return strings.Replace(f.URL(), "http:", "https:", 1) },
			want: []string{"does not speak TLS", "https://"}, wantErr: true,
		},
		{
			name: "proxy unreachable",
			api:  apiAuto, url: root,
			configure: func(t *testing.T, l *Librato, _ *fakelibrato.Server) {
				l.HTTPProxyURL = "http://proxyuser:" + proxyPassword + "@" + closedAddr(t)
			},
			want: []string{"cannot reach the proxy http://127.0.0.1:", "http_proxy_url", "HTTPS_PROXY"}, wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, tc.fake)
			l := unstarted()
			l.API, l.APIURL = tc.api, tc.url(fake)
			if tc.configure != nil {
				tc.configure(t, l, fake)
			}
			require.NoError(t, l.Init())
			t.Cleanup(func() { require.NoError(t, l.Close()) })

			line, err := l.Check(context.Background())
			out := line
			if tc.wantErr {
				require.Error(t, err, "line: %s", line)
				out = err.Error()
			} else {
				require.NoError(t, err)
			}
			for _, want := range tc.want {
				require.Contains(t, out, want)
			}
			t.Log(out)
			require.NotContains(t, out, "\n")
			for _, secret := range []string{testUser, testToken, proxyPassword, "ops%40example.com"} {
				require.NotContains(t, out, secret)
			}
			require.Empty(t, fake.Gauges(), "the check must store nothing")
			require.Empty(t, fake.Measurements(), "the check must store nothing")
		})
	}
}

// writeCA stores the fake's certificate as a tls_ca file.
func writeCA(t *testing.T, f *fakelibrato.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(path, f.CACertPEM(), 0o600))
	return path
}

// closedAddr is a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestCheckNeedsInit(t *testing.T) {
	_, err := unstarted().Check(context.Background())
	require.ErrorContains(t, err, "not initialised")
}

// With the credentials in api_url, a 401 names api_url: there is no
// api_user or api_token in that config to check.
func TestCheck401CredentialsInURL(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := unstarted()
	l.APIUser, l.APIToken = config.Secret{}, config.Secret{}
	l.API = apiAuto
	l.APIURL = strings.Replace(fake.URL(), "http://", "http://ops%40example.com:wr0ng-t0ken@", 1)
	require.NoError(t, l.Init())
	t.Cleanup(func() { require.NoError(t, l.Close()) })

	_, err := l.Check(context.Background())
	require.ErrorContains(t, err, "401")
	require.ErrorContains(t, err, "check the credentials in api_url")
	require.NotContains(t, err.Error(), "api_user")
	require.NotContains(t, err.Error(), "wr0ng-t0ken")
}

// A flush's 401 says the same as -check's when the credentials are in
// api_url; with api_user and api_token set, it names those.
func TestWrite401NamesWhereTheCredentialsAre(t *testing.T) {
	metrics, _ := workload(3)
	for _, tc := range []struct {
		name, want, not string
		inURL           bool
	}{
		{"in api_url", "check the credentials in api_url", "api_user", true},
		{"in api_user and api_token", "check api_user", "in api_url", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			l := unstarted()
			l.APIURL = fake.LegacyURL()
			l.APIToken = config.NewSecret([]byte("wr0ng-t0ken"))
			if tc.inURL {
				l.APIUser, l.APIToken = config.Secret{}, config.Secret{}
				l.APIURL = strings.Replace(fake.LegacyURL(), "http://", "http://ops%40example.com:wr0ng-t0ken@", 1)
			}
			require.NoError(t, l.Init())
			require.NoError(t, l.Connect())
			t.Cleanup(func() { require.NoError(t, l.Close()) })

			err := l.Write(metrics)
			require.ErrorContains(t, err, "401")
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), tc.not)
			require.NotContains(t, err.Error(), "wr0ng-t0ken")
		})
	}
}

// The check's requests end their User-Agent with CheckUserAgentSuffix, so
// that -serve's log can say they are probes that store nothing; a flush's
// requests do not.
func TestCheckRequestsCarryTheCheckUserAgent(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.URL(), func(l *Librato) { l.API = apiAuto })
	_, err := l.Check(context.Background())
	require.NoError(t, err)
	reqs := fake.Requests()
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		require.True(t, strings.HasSuffix(r.Header.Get("User-Agent"), CheckUserAgentSuffix), "%s %s: %q", r.Method, r.Path, r.Header.Get("User-Agent"))
		require.True(t, strings.HasPrefix(r.Header.Get("User-Agent"), "telegraf-output-librato/"))
	}
}

// TestCheckEndsWithinTimeout: the check's client has no Client.Timeout; each
// of its requests, the reading of the answer included, ends at timeout, so
// an API that stops answering (before the headers or in the middle of the
// body) cannot hold -check.
func TestCheckEndsWithinTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action fakelibrato.Action
		want   string
	}{
		{"no answer", fakelibrato.Action{Hang: true}, "within 300ms"},
		{"body never ends", fakelibrato.Action{Status: 200, HangBody: true,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"metrics":[],"query":{"found":0}}`)}, "api_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action { return tc.action }})
			l := unstarted()
			l.API, l.APIURL, l.Timeout = apiAuto, fake.URL(), config.Duration(300*time.Millisecond)
			require.NoError(t, l.Init())
			t.Cleanup(func() { require.NoError(t, l.Close()) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a failure, not a hang
			defer cancel()
			start := time.Now()
			_, err := l.Check(ctx)
			require.Less(t, time.Since(start), 5*time.Second, "ended by timeout")
			require.ErrorContains(t, err, tc.want)
		})
	}
}
