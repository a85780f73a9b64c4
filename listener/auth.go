package listener

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	"github.com/influxdata/telegraf/config"
)

// credentials are the accepted HTTP Basic credentials. The secrets are read
// per request (not cached in plain memory), as Telegraf's secret store
// intends.
type credentials struct {
	user, password config.Secret
	hasUserPass    bool
	tokens         []config.Secret
}

func newCredentials(user, password config.Secret, tokens []config.Secret) (*credentials, error) {
	if user.Empty() != password.Empty() {
		return nil, errors.New("basic_username and basic_password must be set together")
	}
	c := &credentials{user: user, password: password, hasUserPass: !user.Empty()}
	for i, tok := range tokens {
		if tok.Empty() {
			return nil, fmt.Errorf("tokens[%d] is empty", i)
		}
		c.tokens = append(c.tokens, tok)
	}
	return c, nil
}

func (c *credentials) open() bool { return !c.hasUserPass && len(c.tokens) == 0 }

// allowed checks a request's Basic credentials: the configured user and
// password, or a token given as the password (Librato clients: email and
// token) or as the user with an empty password (AppOptics clients).
func (c *credentials) allowed(r *http.Request) (bool, error) {
	if c.open() {
		return true, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false, nil
	}
	if c.hasUserPass {
		u, err := equalSecret(c.user, user)
		if err != nil {
			return false, fmt.Errorf("reading basic_username: %w", err)
		}
		p, err := equalSecret(c.password, pass)
		if err != nil {
			return false, fmt.Errorf("reading basic_password: %w", err)
		}
		if u && p {
			return true, nil
		}
	}
	given := pass
	if pass == "" {
		given = user
	}
	for i, tok := range c.tokens {
		eq, err := equalSecret(tok, given)
		if err != nil {
			return false, fmt.Errorf("reading tokens[%d]: %w", i, err)
		}
		if eq {
			return true, nil
		}
	}
	return false, nil
}

func equalSecret(s config.Secret, given string) (bool, error) {
	buf, err := s.Get()
	if err != nil {
		return false, err
	}
	defer buf.Destroy()
	return subtle.ConstantTimeCompare(buf.Bytes(), []byte(given)) == 1, nil
}
