package main

import (
	"bytes"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestCheckExitCodes: -check prints one line on stdout, OK (exit 0) or
// FAILED naming the setting (exit 1); a config that cannot be loaded exits
// 2. The credentials appear nowhere.
func TestCheckExitCodes(t *testing.T) {
	const wrongToken = "wr0ng-t0ken-abc"
	redirect := func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: 302, Header: http.Header{"Location": {"https://other.example/v1/metrics"}}}
	}
	tests := []struct {
		name   string
		fake   fakelibrato.Options
		conf   func(t *testing.T, f *fakelibrato.Server) string // path of the config
		args   []string                                         // before -config
		code   int
		stdout []string
		stderr string
	}{
		{
			name: "tagged account, auto",
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.URL(), testToken, `api = "auto"`, "")
			},
			code: exitOK, stdout: []string{"OK: ", `takes tag-based measurements (api = "auto" will write tags`},
		},
		{
			name: "legacy account, legacy",
			fake: fakelibrato.Options{TaggedDisabled: true},
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.LegacyURL(), testToken, "", "")
			},
			code: exitOK, stdout: []string{"OK: ", `no tag-based measurements (api = "legacy")`},
		},
		{
			name: "wrong token",
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.LegacyURL(), wrongToken, "", "")
			},
			code: exitCheckFailed, stdout: []string{"FAILED: ", "401", "api_user", "api_token"},
		},
		{
			name: "redirect",
			fake: fakelibrato.Options{Fault: redirect},
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.LegacyURL(), testToken, "", "")
			},
			code: exitCheckFailed, stdout: []string{"FAILED: ", "302", "https://other.example/v1/metrics", "api_url"},
		},
		{
			name: "TLS without tls_ca",
			fake: fakelibrato.Options{TLS: true},
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.LegacyURL(), testToken, "", "")
			},
			code: exitCheckFailed, stdout: []string{"FAILED: ", "certificate", "tls_ca"},
		},
		{
			name: "wrong host",
			conf: func(t *testing.T, _ *fakelibrato.Server) string {
				return writeConf(t, "http://"+closedAddr(t)+"/v1/metrics", testToken, "", "")
			},
			code: exitCheckFailed, stdout: []string{"FAILED: ", "connection refused", "api_url"},
		},
		{
			name: "invalid setting",
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.URL(), testToken, `api = "v2"`, "")
			},
			code: exitCheckFailed, stdout: []string{"FAILED: ", `invalid api "v2"`},
		},
		{
			name: "unknown key",
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.URL(), testToken, `api_key = "x"`, "")
			},
			code: exitCheckLoad, stderr: "api_key",
		},
		{
			name: "missing file",
			conf: func(t *testing.T, _ *fakelibrato.Server) string { return filepath.Join(t.TempDir(), "nope.conf") },
			code: exitCheckLoad, stderr: "reading config",
		},
		{
			name: "no -config",
			code: exitCheckLoad, stderr: "usage",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, tc.fake)
			args := []string{"-check"}
			if tc.conf != nil {
				args = append(args, "-config", tc.conf(t, fake))
			}
			var stdout, stderr bytes.Buffer
			code := runCheck(args, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", &stdout, &stderr)
			for _, want := range tc.stdout {
				require.Contains(t, stdout.String(), want)
			}
			if tc.stdout != nil {
				require.Equal(t, 1, bytes.Count(stdout.Bytes(), []byte("\n")), "one line: %s", &stdout)
			}
			require.Contains(t, stderr.String(), tc.stderr)
			for _, secret := range []string{testUser, testToken, wrongToken} {
				require.NotContains(t, stdout.String()+stderr.String(), secret)
			}
			require.Empty(t, fake.Gauges(), "the check stores nothing")
			require.Empty(t, fake.Measurements(), "the check stores nothing")
		})
	}
}

func TestWantsCheck(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"-check", "-config", "f"}, true},
		{[]string{"-config", "f", "--check"}, true},
		{[]string{"-check=true"}, true},
		{[]string{"-config", "f"}, false},
		{[]string{"-check=false", "-config", "f"}, false},
		{[]string{"--", "-check"}, false},
	} {
		require.Equal(t, tc.want, wantsCheck(tc.args), "%q", tc.args)
	}
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
