package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestCheckExitCodes: -check prints one line, OK (exit 0) or FAILED naming
// the setting (exit 1); a config that cannot be loaded exits 2. The
// credentials appear nowhere.
func TestCheckExitCodes(t *testing.T) {
	const user, token, wrongToken = "check@example.com", "tryout-s3cret", "wr0ng-t0ken-abc"
	conf := func(url, tok, api string) func(*testing.T, *fakelibrato.Server) string {
		return func(t *testing.T, f *fakelibrato.Server) string {
			if url == "" {
				url = f.URL()
			}
			return writeFile(t, configTOML(pluginSettings{url: url, user: user, token: tok, api: api}))
		}
	}
	tests := []struct {
		name   string
		fake   fakelibrato.Options
		conf   func(*testing.T, *fakelibrato.Server) string
		code   int
		stdout []string
		stderr string
	}{
		{name: "tagged account, auto", conf: conf("", token, "auto"),
			code: exitOK, stdout: []string{"OK: ", `takes tag-based measurements (api = "auto" will write tags`}},
		{name: "legacy account, auto", fake: fakelibrato.Options{TaggedDisabled: true}, conf: conf("", token, "auto"),
			code: exitOK, stdout: []string{"OK: ", `no tag-based measurements (api = "auto" will write gauges with sources`}},
		{name: "wrong token", conf: conf("", wrongToken, "auto"),
			code: exitCheckFailed, stdout: []string{"FAILED: ", "401", "api_token"}},
		{name: "TLS without tls_ca", fake: fakelibrato.Options{TLS: true}, conf: conf("", token, "auto"),
			code: exitCheckFailed, stdout: []string{"FAILED: ", "tls_ca"}},
		{name: "wrong host", conf: conf("http://"+closedAddr(t), token, "auto"),
			code: exitCheckFailed, stdout: []string{"FAILED: ", "connection refused", "api_url"}},
		{name: "not TOML", conf: func(t *testing.T, _ *fakelibrato.Server) string { return writeFile(t, "[[outputs.librato]\n") },
			code: exitCheckLoad, stderr: "loading config"},
		{name: "missing file", conf: func(t *testing.T, _ *fakelibrato.Server) string { return filepath.Join(t.TempDir(), "nope") },
			code: exitCheckLoad, stderr: "reading config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fake.User, tc.fake.Token = user, token
			fake := fakelibrato.New(tc.fake)
			t.Cleanup(fake.Close)
			var stdout, stderr bytes.Buffer
			code := runCheck([]string{"-check", "-config", tc.conf(t, fake)}, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", &stdout, &stderr)
			for _, want := range tc.stdout {
				require.Contains(t, stdout.String(), want)
			}
			if tc.stdout != nil {
				require.Equal(t, 1, bytes.Count(stdout.Bytes(), []byte("\n")), "one line: %s", &stdout)
			}
			require.Contains(t, stderr.String(), tc.stderr)
			for _, secret := range []string{user, token, wrongToken} {
				require.NotContains(t, stdout.String()+stderr.String(), secret)
			}
			require.Empty(t, fake.Gauges(), "the check stores nothing")
			require.Empty(t, fake.Measurements(), "the check stores nothing")
		})
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "librato.conf")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
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
