package librato

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/influxdata/telegraf/config"

	"github.com/seed-d22a899f/librato/internal/redact"
)

// The options' defaults and their validation: everything Init checks before
// it builds anything, so a bad config fails at startup with a message that
// names the option, and never shows a credential.

// Option defaults (those not set here are the zero value).
const (
	defaultTemplate               = "host"
	defaultTimeout                = config.Duration(5 * time.Second)
	defaultRetryBudget            = config.Duration(5 * time.Second)
	defaultMeasurementsPerRequest = 300
	// Ten requests in flight move 10 × 300 measurements per ~600 ms round trip
	// (5,000/s against the real API): several busy hosts' worth, while staying
	// far below the request concurrency at which Librato starts rate limiting.
	defaultConcurrentWrites = 10
	// defaultMaxRetryAfter caps the pause an answer may ask for.
	defaultMaxRetryAfter = time.Minute
	// defaultNewSeriesPeriod is max_new_series_period when max_new_series
	// is set without it.
	defaultNewSeriesPeriod = time.Hour
)

func newLibrato() *Librato {
	return &Librato{
		Timeout:                defaultTimeout,
		RetryBudget:            defaultRetryBudget,
		MaxRetryAfter:          config.Duration(defaultMaxRetryAfter),
		MeasurementsPerRequest: defaultMeasurementsPerRequest,
		ConcurrentWrites:       defaultConcurrentWrites,
	}
}

// checkConfig validates the options and fills in the defaults that depend
// on other options. It returns api_url parsed and without credentials, and
// the endpoints derived from it.
func (l *Librato) checkConfig() (*url.URL, endpoints, error) {
	endpoint, eps, err := l.resolveEndpoint()
	if err == nil {
		err = l.checkSecretRefs()
	}
	if err == nil {
		err = l.resolveTemplate()
	}
	if err == nil {
		err = l.checkLimits()
	}
	if err != nil {
		return nil, endpoints{}, l.redactError(err)
	}
	return endpoint, eps, nil
}

// redactError passes an Init error through the one redaction function, with
// the credentials known by now (api_url's included): an option's value
// quoted in an error may be a URL, or hold the account email. The result
// does not wrap err: its text is what must not be printed, and nothing
// needs to tell Init's errors apart.
func (l *Librato) redactError(err error) error {
	secrets := l.secretsForMessages()
	defer secrets.Forget()
	return errors.New(secrets.Redact(err.Error()))
}

// secretsForMessages are the configured credentials, for redacting what is
// printed; nil (URLs still redacted) when they cannot be read, which Init
// reports on its own. The caller Forgets them.
func (l *Librato) secretsForMessages() *redact.Secrets {
	user, err := l.APIUser.Get()
	if err != nil {
		return nil
	}
	defer user.Destroy()
	token, err := l.APIToken.Get()
	if err != nil {
		return nil
	}
	defer token.Destroy()
	return redact.New(user.Bytes(), token.Bytes())
}

// resolveEndpoint picks the URLs for the API mode, moves credentials
// embedded in api_url into secrets (so the URL can be logged) and checks
// both are present.
func (l *Librato) resolveEndpoint() (*url.URL, endpoints, error) {
	switch l.API {
	case "":
		l.API = apiLegacy
	case apiLegacy, apiTagged, apiAuto:
	default:
		return nil, endpoints{}, fmt.Errorf("invalid api %q: must be %q, %q or %q", l.API, apiLegacy, apiTagged, apiAuto)
	}
	if l.APIURL == "" {
		l.APIURL = defaultAPIURL(l.API)
	}
	endpoint, err := parseAPIURL(l.APIURL)
	if err != nil {
		return nil, endpoints{}, err
	}
	if err := l.takeURLCredentials(endpoint); err != nil {
		return nil, endpoints{}, err
	}
	l.APIURL = endpoint.String()
	eps, err := resolveEndpoints(l.API, endpoint)
	if err != nil {
		return nil, endpoints{}, err
	}

	if l.APIUser.Empty() {
		return nil, endpoints{}, errors.New("api_user is required: set it to the Librato account email")
	}
	if l.APIToken.Empty() {
		return nil, endpoints{}, errors.New("api_token is required: set it to a Librato API token with record access")
	}
	if endpoint.Scheme == "http" && !isLoopback(endpoint.Hostname()) {
		l.Log.Warnf("api_url %q is plain HTTP: Librato rejects requests that are not HTTPS", withoutUser(endpoint))
	}
	return endpoint, eps, nil
}

// apiURLExample is what every api_url error suggests.
const apiURLExample = "write it as https://host/path, e.g. " + defaultAPIRoot + legacyPath

// parseAPIURL parses api_url. A mistyped api_url often embeds the
// credentials (https:user:token@host), and a URL that does not have the
// shape of one cannot be told apart from them: its errors show at most the
// scheme and host of a URL that has them, never the value.
func parseAPIURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil && !strings.Contains(raw, "://") {
		// host:port/path fails to parse; its fault is the missing scheme.
		return nil, fmt.Errorf("invalid api_url: it does not start with https:// or http://: %s", apiURLExample)
	}
	if err != nil {
		// url.Parse's error quotes the input.
		return nil, errors.New("invalid api_url: not a URL (a space, a control character, or a '/' in an embedded token?); " +
			"the value is not shown, as it may hold credentials: " + apiURLExample)
	}
	scheme := strings.ToLower(u.Scheme)
	web := scheme == "http" || scheme == "https"
	switch {
	case web && u.Host != "" && u.Opaque == "":
		return u, nil
	case web && (u.Opaque != "" || !strings.HasPrefix(raw[len(u.Scheme)+1:], "//")):
		return nil, fmt.Errorf(`invalid api_url: "%s:" must be followed by "//" and the host: %s`, scheme, apiURLExample)
	case web:
		return nil, fmt.Errorf(`invalid api_url: no host after "%s://": %s`, scheme, apiURLExample)
	case u.Scheme == "" && hasWebPrefix(strings.ToLower(u.Path), "//"):
		return nil, fmt.Errorf(`invalid api_url: a ":" is missing after the scheme: %s`, apiURLExample)
	case u.Host != "":
		// An authority after another scheme: ftp://host.
		return nil, fmt.Errorf("invalid api_url %q: want an http(s) URL with a host: %s",
			withoutUser(&url.URL{Scheme: u.Scheme, Host: u.Host}), apiURLExample)
	}
	// "user:token@host" parses with the user as the scheme.
	return nil, fmt.Errorf("invalid api_url: it does not start with https:// or http://: %s", apiURLExample)
}

// hasWebPrefix: s starts with "http" or "https" followed by sep.
func hasWebPrefix(s, sep string) bool {
	return strings.HasPrefix(s, "http"+sep) || strings.HasPrefix(s, "https"+sep)
}

// takeURLCredentials supports https://user:token@host/... by turning the
// user info into the api_user/api_token secrets and stripping it from the URL.
func (l *Librato) takeURLCredentials(endpoint *url.URL) error {
	if endpoint.User == nil {
		return nil
	}
	if !l.APIUser.Empty() || !l.APIToken.Empty() {
		return errors.New("api_url carries credentials and api_user/api_token are set too: use one of them")
	}
	l.credentialsInURL = true
	user := []byte(endpoint.User.Username())
	token, _ := endpoint.User.Password()
	l.APIUser = config.NewSecret(user)
	l.APIToken = config.NewSecret([]byte(token))
	endpoint.User = nil
	return nil
}

// withoutUser is a URL for messages, through the one redaction function:
// no userinfo (url.Redacted keeps the user, the account email) and no query
// values (a proxy's URL may carry a key there).
func withoutUser(u *url.URL) string {
	return redact.URL(u.String())
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// resolveTemplate folds the deprecated source_tag into template.
func (l *Librato) resolveTemplate() error {
	switch {
	case l.SourceTag == "":
	case l.Template == "":
		l.Template = l.SourceTag
	case l.Template != l.SourceTag:
		return fmt.Errorf("source_tag %q contradicts template %q: remove the deprecated source_tag", l.SourceTag, l.Template)
	}
	if l.Template == "" {
		l.Template = defaultTemplate
	}
	// Parsed here too, so that Init and -check refuse a bad entry before
	// the first flush builds a converter.
	_, err := newSourceTemplates(l.Template, l.Templates)
	return err
}

// checkLimits validates the delivery options and fills in max_retry_after
// and content_encoding when unset.
func (l *Librato) checkLimits() error {
	if l.MeasurementsPerRequest <= 0 {
		return fmt.Errorf("measurements_per_request must be positive, got %d", l.MeasurementsPerRequest)
	}
	if l.ConcurrentWrites <= 0 {
		return fmt.Errorf("concurrent_writes must be positive, got %d", l.ConcurrentWrites)
	}
	if l.Timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %s", time.Duration(l.Timeout))
	}
	if l.RetryBudget < 0 {
		return fmt.Errorf("retry_budget must not be negative, got %s", time.Duration(l.RetryBudget))
	}
	switch {
	case l.MaxRetryAfter < 0:
		return fmt.Errorf("max_retry_after must not be negative, got %s", time.Duration(l.MaxRetryAfter))
	case l.MaxRetryAfter == 0:
		l.MaxRetryAfter = config.Duration(defaultMaxRetryAfter)
	}
	switch l.ContentEncoding {
	case "", "identity":
		l.ContentEncoding = "identity"
	case "gzip":
	default:
		return fmt.Errorf("invalid content_encoding %q: must be \"identity\" or \"gzip\"", l.ContentEncoding)
	}
	return nil
}

// checkSeriesGuard validates max_new_series and max_new_series_period and
// returns the period to use. Init calls it when it builds the series guard.
func checkSeriesGuard(limit int, period time.Duration) (time.Duration, error) {
	if limit < 0 {
		return 0, fmt.Errorf("max_new_series must not be negative, got %d", limit)
	}
	switch {
	case period == 0:
		return defaultNewSeriesPeriod, nil
	case period < time.Second:
		return 0, fmt.Errorf("max_new_series_period must be at least 1s, got %s", period)
	}
	return period, nil
}
