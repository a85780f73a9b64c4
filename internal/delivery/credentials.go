package delivery

import (
	"encoding/base64"
	"fmt"

	"github.com/awnumar/memguard"

	"github.com/seed-d22a899f/librato/internal/redact"
)

// Credentials reads the secrets and returns what requests need of them: the
// Authorization header, kept in memguard-locked memory (not swapped out,
// wiped when destroyed), and the forms of the secrets to redact from
// response text. The caller must call Forget when done.
//
// Reading a secret opens Telegraf's memguard enclave, which maps, locks and
// protects fresh pages every time: about 15% of a flush's CPU when it was
// done per Write. Deliveries therefore read the secrets once per connection
// (see flushCredentials); the credential check reads them per check.
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

	creds := memguard.NewBuffer(len(user.Bytes()) + 1 + len(token.Bytes()))
	defer creds.Destroy()
	raw := creds.Bytes()
	copy(raw, user.Bytes())
	raw[len(user.Bytes())] = ':'
	copy(raw[len(user.Bytes())+1:], token.Bytes())
	const prefix = "Basic "
	header := memguard.NewBuffer(len(prefix) + base64.StdEncoding.EncodedLen(len(raw)))
	copy(header.Bytes(), prefix)
	base64.StdEncoding.Encode(header.Bytes()[len(prefix):], raw)
	header.Freeze() // read-only from here: a stray write faults instead of corrupting it
	return Credentials{header: header, secrets: redact.New(user.Bytes(), token.Bytes())}, nil
}

// Credentials are api_user's and api_token's share of every request: the
// Authorization header and the secrets to redact from response text. They
// live until Forget.
type Credentials struct {
	header  *memguard.LockedBuffer // "Basic " + base64(user:token)
	secrets *redact.Secrets
}

// authorization is the Authorization header's value for one request.
// net/http needs a string, so each request gets its own copy of the locked
// bytes; it is garbage once the request is written. A string aliasing the
// locked memory would outlive Forget wherever a transport kept the request,
// and reading destroyed memguard memory crashes the process.
func (r *Credentials) authorization() []string {
	return []string{string(r.header.Bytes())}
}

// Redact passes text that came from the network through the one redaction
// function: an API or proxy echoing the credentials, or an SSO page's token
// in a URL, must not put them in our logs.
func (r *Credentials) Redact(text []byte) []byte {
	return []byte(r.secrets.Redact(string(text)))
}

// Forget destroys the locked header and overwrites the copies of the
// credentials kept for redaction.
func (r *Credentials) Forget() {
	if r.header != nil {
		r.header.Destroy()
	}
	r.secrets.Forget()
}

// flushCredentials returns the connection's credentials, reading the
// secrets on the first flush after Connect and on the flush after one that
// failed: a dynamic secret (a secret store that rotates the token) is read
// again when Librato may have refused the old one, and a steady stream of
// successful flushes never opens the enclave. Close forgets them.
func (s *Sender) flushCredentials() (*Credentials, error) {
	if s.creds != nil && !s.rereadCreds {
		return s.creds, nil
	}
	fresh, err := s.Credentials()
	if err != nil {
		return nil, err
	}
	s.forgetCredentials()
	s.creds, s.rereadCreds = &fresh, false
	return s.creds, nil
}

// forgetCredentials destroys the connection's credentials, if any. No
// flush is running: the caller serialises Deliver, Connect and Close.
func (s *Sender) forgetCredentials() {
	if s.creds != nil {
		s.creds.Forget()
		s.creds = nil
	}
}
