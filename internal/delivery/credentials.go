package delivery

import (
	"encoding/base64"
	"fmt"

	"github.com/seed-d22a899f/librato/internal/redact"
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
	r := Credentials{auth: []string{"Basic " + basic}, secrets: redact.New(user.Bytes(), token.Bytes())}
	return r, nil
}

// Credentials is one flush's credentials: the Authorization header, and the
// secrets to redact from response text. It lives only as long as the flush.
type Credentials struct {
	auth    []string
	secrets *redact.Secrets
}

// Redact passes text that came from the network through the one redaction
// function: an API or proxy echoing the credentials, or an SSO page's token
// in a URL, must not put them in our logs.
func (r *Credentials) Redact(text []byte) []byte {
	return []byte(r.secrets.Redact(string(text)))
}

// Forget overwrites the copies of the credentials kept for redaction.
func (r *Credentials) Forget() {
	r.secrets.Forget()
}
