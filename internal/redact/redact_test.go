package redact

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

const (
	user  = "me+ops@example.com"
	token = "t0k/en=9f8e7d"
)

func TestRedact(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
	tests := []struct {
		name, in, want string
	}{
		{"plain text unchanged", "librato answered 500: oops", "librato answered 500: oops"},
		{"URL without secrets unchanged", "POST https://metrics-api.librato.com/v1/metrics: 5 measurements",
			"POST https://metrics-api.librato.com/v1/metrics: 5 measurements"},
		{"userinfo", "https://someone:hunter2@sso.example/login", "https://sso.example/login"},
		{"SSO location", "https://sso.example/login?token=SECRET&user=me@x&next=",
			"https://sso.example/login?token=[redacted]&user=[redacted]&next="},
		{"bare query item", "https://h/p?SECRET", "https://h/p?[redacted]"},
		{"fragment", "https://h/cb#access_token=SECRET&state=1", "https://h/cb#access_token=[redacted]&state=[redacted]"},
		{"relative location", "/login?token=SECRET", "/login?token=[redacted]"},
		{"in a sentence, quoted", `a redirect to "https://a:b@h/x?k=v", which is not followed`,
			`a redirect to "https://h/x?k=[redacted]", which is not followed`},
		{"sentence punctuation stays", "go to https://h/x?k=v).", "go to https://h/x?k=[redacted])."},
		{"JSON-escaped URL", `{"url":"https:\/\/a:b@h\/x?k=v"}`, `{"url":"https:\/\/h\/x?k=[redacted]"}`},
		{"echoed request line", "<p>POST /v1/metrics?key=SECRET HTTP/1.1</p>", "<p>POST /v1/metrics?key=[redacted] HTTP/1.1</p>"},
		{"path without query unchanged", "GET /v1/metrics failed", "GET /v1/metrics failed"},
		{"compact JSON keeps its structure", `{"errors":{"params":{"source":["web@1?x=y"]}}}`,
			`{"errors":{"params":{"source":["web@1?x=y"]}}}`},
		{"URL in compact JSON", `{"errors":{"request":["https://u:p@h/x?k=v"]}}`, `{"errors":{"request":["https://h/x?k=[redacted]"]}}`},
		{"two URLs", "from http://h/a?x=1 to https://u:p@g/b", "from http://h/a?x=[redacted] to https://g/b"},
		{"typo, no slashes", "https:someone:hunter2@host/v1", "https:host/v1"},
		{"typo, one slash", "https:/someone:hunter2@host", "https:/host"},
		{"typo, no colon", "https//someone:hunter2@host", "host"},
		{"typo, three slashes", "https:///someone:hunter2@host", "https:///host"},
		{"typo, no scheme", "someone:hunter2@host/v1", "host/v1"},
		{"configured user", "bad credentials " + user, "bad credentials " + Mask},
		{"configured token", "token " + token + " refused", "token " + Mask + " refused"},
		{"Basic value", "Authorization: Basic " + basic, "Authorization: Basic " + Mask},
		{"Basic value unpadded", "Basic " + strings.TrimRight(basic, "="), "Basic " + Mask},
		{"URL-escaped user", "user=me%2Bops%40example.com in text", "user=" + Mask + " in text"},
		{"JSON-escaped token", `{"t":"t0k\/en=9f8e7d"}`, `{"t":"` + Mask + `"}`},
	}
	s := New([]byte(user), []byte(token))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Redact(tc.in)
			if got != tc.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			// Callers may redact what was redacted already.
			if again := s.Redact(got); again != got {
				t.Errorf("Redact(%q) = %q, redacted again %q", tc.in, got, again)
			}
		})
	}
}

// TestEveryForm: the forms the credentials may be echoed in, from a token
// holding characters every escaping treats differently.
func TestEveryForm(t *testing.T) {
	const user, token = "ops+x@example.com", `to/k<en>"q`
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
	s := New([]byte(user), []byte(token))
	for _, form := range []string{
		user, token,
		basic, strings.TrimRight(basic, "="), // the Basic header, with and without padding
		`to/k\u003cen\u003e\"q`,  // encoding/json
		`to\/k\u003cen\u003e\"q`, // escaped slash, as PHP and others write it
		`to/k<en>\"q`,            // plain JSON escaping
		"ops%2Bx%40example.com",  // query escaping
		"to%2Fk%3Cen%3E%22q",     // query escaping of the token
	} {
		if got := s.Redact("at " + form + "."); got != "at "+Mask+"." {
			t.Errorf("Redact(%q) = %q", form, got)
		}
	}
	for i := 1; i < len(s.forms); i++ {
		if len(s.forms[i-1]) < len(s.forms[i]) {
			t.Errorf("forms not longest first: %q before %q", s.forms[i-1], s.forms[i])
		}
	}
	if short := New([]byte("ab"), nil); len(short.forms) != 0 {
		t.Errorf("strings too short to redact safely are looked for: %q", short.forms)
	}
}

// TestRedactNeverShowsSecrets: whatever surrounds them, no form of the
// credentials survives.
func TestRedactNeverShowsSecrets(t *testing.T) {
	s := New([]byte(user), []byte(token))
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
	for _, in := range []string{
		"https://" + user + ":" + token + "@h/x",
		"Location: https://sso.example/login?token=" + token + "&user=" + user,
		basic, strings.TrimRight(basic, "="),
		base64.URLEncoding.EncodeToString([]byte(user + ":" + token)),
		`"` + strings.ReplaceAll(token, "/", `\/`) + `"`,
	} {
		got := s.Redact(in)
		for _, secret := range []string{user, token, basic, strings.TrimRight(basic, "=")} {
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q still holds %q", in, got, secret)
			}
		}
	}
}

func TestNilAndForgottenSecretsCleanURLs(t *testing.T) {
	var s *Secrets
	if got := s.Redact("https://u:p@h/?a=b"); got != "https://h/?a=[redacted]" {
		t.Errorf("nil Secrets: %q", got)
	}
	f := New([]byte(user), []byte(token))
	f.Forget()
	if got := f.Redact(token); got != token {
		t.Errorf("forgotten Secrets still redact: %q", got)
	}
	if got := URL("https://u:p@h/"); got != "https://h/" {
		t.Errorf("URL: %q", got)
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("https://u:p@h/x?token=" + token)
	f.Add(`{"u":"https:\/\/h?x=1"}`)
	f.Add(`{"errors":{"params":{"source":["web@1 https://u@h/x?k=a\\"]}}}`)
	f.Add(`["/v1/metrics?k=\"v\"", "https://h#f=\u0026"]`)
	s := New([]byte(user), []byte(token))
	f.Fuzz(func(t *testing.T, in string) {
		got := s.Redact(in)
		if strings.Contains(got, token) {
			t.Errorf("Redact(%q) = %q holds the token", in, got)
		}
		// Answers' bodies are redacted before they are classified.
		if json.Valid([]byte(in)) && !json.Valid([]byte(got)) {
			t.Errorf("Redact broke JSON: %q -> %q", in, got)
		}
	})
}
