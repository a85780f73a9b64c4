package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Credentials reads the secrets once per flush (or credential check), and
// destroys them at once: the Authorization header and the copies kept to
// redact response text live only as long as the flush. The caller must call
// Forget when done.
func (s *Sender) Credentials() (Credentials, error) {
	user, err := s.cfg.User.Get()
	if err != nil {
		return Credentials{}, fmt.Errorf("reading api_user: %w", err)
	}
	defer user.Destroy()
	token, err := s.cfg.Token.Get()
	if err != nil {
		return Credentials{}, fmt.Errorf("reading api_token: %w", err)
	}
	defer token.Destroy()
	creds := make([]byte, 0, len(user.Bytes())+1+len(token.Bytes()))
	creds = append(append(append(creds, user.Bytes()...), ':'), token.Bytes()...)
	basic := base64.StdEncoding.EncodeToString(creds)
	clear(creds)
	r := Credentials{auth: []string{"Basic " + basic}}
	r.secrets = secretForms(user.TemporaryString(), token.TemporaryString(), basic)
	return r, nil
}

// secretForms lists every way a proxy or API might echo the credentials:
// as they are, as the Basic header's base64, JSON-escaped and URL-escaped.
// Strings shorter than 3 bytes are left out: they would redact ordinary text.
func secretForms(user, token, basic string) [][]byte {
	var forms [][]byte
	add := func(s string) {
		if len(s) >= 3 && !slices.ContainsFunc(forms, func(f []byte) bool { return string(f) == s }) {
			forms = append(forms, []byte(s))
		}
	}
	add(basic)
	add(strings.TrimRight(basic, "="))
	for _, secret := range []string{user, token} {
		add(secret)
		if quoted, err := json.Marshal(secret); err == nil { // a string always marshals
			add(string(quoted[1 : len(quoted)-1]))
			add(strings.ReplaceAll(string(quoted[1:len(quoted)-1]), "/", `\/`))
		}
		add(strconv.QuoteToASCII(secret)[1 : len(strconv.QuoteToASCII(secret))-1])
		add(url.QueryEscape(secret))
		add(url.PathEscape(secret))
	}
	// Longest first, so a form is not half-replaced by a shorter one.
	slices.SortFunc(forms, func(a, b []byte) int { return len(b) - len(a) })
	return forms
}

// Credentials is one flush's credentials: the Authorization header, and the
// secrets to redact from response text. It lives only as long as the flush.
type Credentials struct {
	auth    []string
	secrets [][]byte
}

// Redact removes the credentials from text that came from the network: an
// API or proxy echoing them must not put them in our logs.
func (r *Credentials) Redact(text []byte) []byte {
	for _, secret := range r.secrets {
		text = bytes.ReplaceAll(text, secret, []byte("[redacted]"))
	}
	return text
}

// Forget clears the secrets kept for redaction.
func (r *Credentials) Forget() {
	for _, secret := range r.secrets {
		clear(secret)
	}
}
