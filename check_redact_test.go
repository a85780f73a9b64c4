package librato

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// ssoSecret is a token an SSO page puts in a URL: not configured anywhere,
// so only the masking of query values can hide it.
const ssoSecret = "sso-S3CR3T-71"

// TestCheckRedactsWhatItPrints: -check prints no credential, whether an SSO
// redirect, a proxy page or api_url itself carries it.
func TestCheckRedactsWhatItPrints(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testToken))
	redirect := func(location string) fakelibrato.Options {
		return fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
			return fakelibrato.Action{Status: http.StatusFound, Header: http.Header{"Location": {location}}}
		}}
	}
	tests := []struct {
		name    string
		fake    fakelibrato.Options
		query   string // added to api_url
		want    []string
		wantErr bool
	}{
		{
			name:    "SSO redirect echoing a token and the user",
			fake:    redirect("https://sso.example/login?token=" + ssoSecret + "&user=" + url.QueryEscape(testUser)),
			want:    []string{"302", `"https://sso.example/login?token=[redacted]&user=[redacted]"`, "not followed"},
			wantErr: true,
		},
		{
			name:    "SSO redirect with userinfo and the configured token",
			fake:    redirect("https://" + url.PathEscape(testUser) + ":" + testToken + "@sso.example/cb#t=" + testToken),
			want:    []string{"302", `"https://sso.example/cb#t=[redacted]"`},
			wantErr: true,
		},
		{
			name:    "relative SSO redirect",
			fake:    redirect("/sso?ticket=" + ssoSecret),
			want:    []string{"302", "/sso?ticket=[redacted]"},
			wantErr: true,
		},
		{
			name: "proxy page echoing a link and the Authorization value",
			fake: fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
				return fakelibrato.Action{Status: http.StatusOK, Header: http.Header{"Content-Type": {"text/html"}},
					Body: []byte(`<a href="https://sso.example/login?token=` + ssoSecret + `">log in</a> Basic ` + basic)}
			}},
			want:    []string{"not the Librato API", "token=[redacted]", "Basic [redacted]"},
			wantErr: true,
		},
		{
			name:  "api_url with a key in its query",
			query: "?key=" + ssoSecret,
			want:  []string{"OK: http://127.0.0.1:", "?key=[redacted]"},
		},
		{
			name: "wrong path, api_url with a key in its query",
			fake: fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
				return fakelibrato.Action{Status: http.StatusNotFound}
			}},
			query:   "?key=" + ssoSecret,
			want:    []string{"/v1/metrics?key=[redacted]&length=1 answered 404"},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, tc.fake)
			l := unstarted()
			l.API, l.APIURL = apiAuto, fake.URL()+tc.query
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
			t.Log(out)
			for _, want := range tc.want {
				require.Contains(t, out, want)
			}
			for _, secret := range []string{ssoSecret, testUser, testToken, basic, url.QueryEscape(testUser), url.PathEscape(testUser)} {
				require.NotContains(t, out, secret)
			}
		})
	}
}
