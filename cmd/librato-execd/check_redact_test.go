package main

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestCheckPrintsNoCredentials: what -check prints passes the plugin's
// redaction: an SSO redirect's token and a mistyped api_url's credentials
// never reach stdout or stderr.
func TestCheckPrintsNoCredentials(t *testing.T) {
	const (
		ssoSecret = "sso-S3CR3T-71"
		typoUser  = "alice-acct"
		typoToken = "tok3n-Q7W"
	)
	tests := []struct {
		name   string
		fake   fakelibrato.Options
		conf   func(t *testing.T, f *fakelibrato.Server) string
		stdout []string
	}{
		{
			name: "SSO redirect",
			fake: fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
				return fakelibrato.Action{Status: http.StatusFound, Header: http.Header{"Location": {
					"https://sso.example/login?token=" + ssoSecret + "&user=" + url.QueryEscape(testUser)}}}
			}},
			conf: func(t *testing.T, f *fakelibrato.Server) string {
				return writeConf(t, f.LegacyURL(), testToken, "", "")
			},
			stdout: []string{"FAILED: ", "302", "https://sso.example/login?token=[redacted]&user=[redacted]"},
		},
		{
			name: "api_url typo with credentials",
			conf: func(t *testing.T, _ *fakelibrato.Server) string {
				p := filepath.Join(t.TempDir(), "librato-plugin.conf")
				conf := "[[outputs.librato]]\n  api_url = \"https:" + typoUser + ":" + typoToken + "@metrics-api.librato.com/v1/metrics\"\n"
				require.NoError(t, os.WriteFile(p, []byte(conf), 0o600))
				return p
			},
			stdout: []string{"FAILED: ", "invalid api_url", `"https:" must be followed by "//"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, tc.fake)
			var stdout, stderr bytes.Buffer
			code := runCheck([]string{"-check", "-config", tc.conf(t, fake)}, &stdout, &stderr)
			require.Equal(t, exitCheckFailed, code, "stdout: %s\nstderr: %s", &stdout, &stderr)
			for _, want := range tc.stdout {
				require.Contains(t, stdout.String(), want)
			}
			for _, secret := range []string{ssoSecret, testUser, testToken, url.QueryEscape(testUser), typoUser, typoToken} {
				require.NotContains(t, stdout.String()+stderr.String(), secret)
			}
		})
	}
}
