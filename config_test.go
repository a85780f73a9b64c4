package librato

import (
	"strings"
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
)

// Distinctive credentials typed into api_url: the errors must show neither.
const (
	typoUser  = "alice-acct"
	typoToken = "tok3n-Q7W"
)

// TestInitNeverQuotesAPIURLTypos: a mistyped api_url holding credentials is
// never quoted in the startup error, which still says how to fix it.
func TestInitNeverQuotesAPIURLTypos(t *testing.T) {
	creds := typoUser + ":" + typoToken + "@metrics-api.librato.com"
	tests := []struct {
		name, apiURL string
		want         string // a hint the error gives
	}{
		{"no slashes", "https:" + creds + "/v1/metrics", `"https:" must be followed by "//"`},
		{"one slash", "https:/" + creds + "/v1/metrics", `"https:" must be followed by "//"`},
		{"no colon", "https//" + creds + "/v1/metrics", `a ":" is missing`},
		{"three slashes", "https:///" + creds + "/v1/metrics", `no host after "https://"`},
		{"no scheme", creds + "/v1/metrics", "does not start with https://"},
		{"address and port without a scheme", "127.0.0.1:8085/v1/metrics", "does not start with https://"},
		{"space in the token", "https://" + typoUser + ":" + typoToken + " x@metrics-api.librato.com/v1/metrics", "not a URL"},
		{"control character", "https://" + typoUser + ":" + typoToken + "\x01@metrics-api.librato.com/v1/metrics", "not a URL"},
		{"slash in the token", "https://" + typoUser + ":" + typoToken + "/x@metrics-api.librato.com/v1/metrics", "not a URL"},
		{"other scheme", "ftp://" + creds + "/v1/metrics", `"ftp://metrics-api.librato.com"`},
		{"no host after credentials", "https://" + typoUser + ":" + typoToken + "@", `no host after "https://"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := unstarted()
			l.APIUser, l.APIToken = config.Secret{}, config.Secret{}
			l.APIURL = tc.apiURL
			err := l.Init()
			require.Error(t, err)
			msg := err.Error()
			t.Log(msg)
			require.Contains(t, msg, tc.want)
			require.Contains(t, msg, "https://", "the error shows the form to use")
			for _, leak := range []string{typoUser, typoToken, "alice", "Q7W"} {
				require.NotContains(t, msg, leak)
			}
		})
	}
}

// TestInitErrorsShowNoCredentials: Init's errors that name a URL hide the
// account email and token, and a proxy key in its query.
func TestInitErrorsShowNoCredentials(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*Librato)
	}{
		{"legacy URL with api = tagged, credentials in the URL", func(l *Librato) {
			l.APIUser, l.APIToken = config.Secret{}, config.Secret{}
			l.API, l.APIURL = apiTagged, "https://"+typoUser+":"+typoToken+"@proxy.example/v1/metrics?key="+typoToken
		}},
		{"tagged URL with api = legacy, key in the query", func(l *Librato) {
			l.API, l.APIURL = apiLegacy, "https://proxy.example/v1/measurements?key="+typoToken+"&u="+testUser
		}},
		{"email as URL user", func(l *Librato) {
			l.APIUser, l.APIToken = config.Secret{}, config.Secret{}
			l.API, l.APIURL = apiLegacy, "https://"+testUser+":"+typoToken+"@proxy.example/v1/measurements"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := unstarted()
			tc.configure(l)
			err := l.Init()
			require.Error(t, err)
			t.Log(err)
			requireNoCredentials(t, err.Error())
			for _, leak := range []string{typoUser, typoToken, "ops%40example.com"} {
				require.NotContains(t, err.Error(), leak)
			}
			require.Contains(t, err.Error(), "proxy.example", "the error still names the URL")
		})
	}
}

// TestPlainHTTPWarningShowsNoCredentials: the startup warning about plain
// HTTP names the URL without its query values.
func TestPlainHTTPWarningShowsNoCredentials(t *testing.T) {
	logger := newCaptureLogger()
	l := unstarted()
	l.Log = logger
	l.APIURL = "http://proxy.example/v1/metrics?key=" + typoToken
	require.NoError(t, l.Init())
	text := logText(logger)
	require.Contains(t, text, "plain HTTP")
	require.Contains(t, text, "http://proxy.example/v1/metrics?key=[redacted]")
	require.NotContains(t, text, typoToken)
}

// TestInitErrorsNeverShowTheAccountEmail: whichever option Init refuses,
// its error does not show the account email, even where the value quoted
// holds it.
func TestInitErrorsNeverShowTheAccountEmail(t *testing.T) {
	for name, configure := range map[string]func(*Librato){
		"default_source":          func(l *Librato) { l.DefaultSource = testUser + " x" },
		"tags_include":            func(l *Librato) { l.TagsInclude = []string{"[" + testUser} },
		"source_tag and template": func(l *Librato) { l.SourceTag, l.Template = testUser, "host" },
		"api":                     func(l *Librato) { l.API = testUser },
		"content_encoding":        func(l *Librato) { l.ContentEncoding = testUser },
	} {
		t.Run(name, func(t *testing.T) {
			l := unstarted()
			configure(l)
			err := l.Init()
			require.Error(t, err)
			t.Log(err)
			requireNoCredentials(t, err.Error())
			require.Contains(t, err.Error(), name[:strings.IndexAny(name+" ", " ")])
		})
	}
}
