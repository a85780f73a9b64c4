package librato

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/redact"
)

// The credential check (librato-execd/librato-tryout -check): a few requests
// that store nothing, answering "would this configuration work?" before
// deploying it, and naming the setting to fix when it would not.

// Empty payloads: Librato refuses them with 400 after authentication and
// the account checks, so the answer tells whether the token may record and
// whether the account takes tags, and nothing is ever stored.
var (
	emptyTagged = []byte(`{"measurements":[]}`)
	emptyLegacy = []byte(`{"gauges":[]}`)
)

// CheckUserAgentSuffix ends the User-Agent of the check's requests, so that
// a server log (librato-tryout -serve's, or a proxy's) can tell the check's
// empty probes, answered 400 by design, from a flush that was rejected.
const CheckUserAgentSuffix = " (credential check)"

// Check makes read-only and empty requests to the configured API and returns
// one line saying that the credentials work, with the account's API mode,
// or an error naming the setting to fix. It needs Init; the secrets never
// appear in what it returns.
func (l *Librato) Check(ctx context.Context) (string, error) {
	if l.sender == nil {
		return "", errors.New("plugin not initialised")
	}
	if !l.sender.connected() {
		if err := l.sender.connect(); err != nil {
			return "", err
		}
	}
	auth, err := l.sender.core.Credentials()
	if err != nil {
		return "", err
	}
	defer auth.Forget()
	red := l.secretsForMessages()
	defer red.Forget()
	c := &credCheck{s: l.sender, auth: &auth, red: red, credentialsInURL: l.credentialsInURL}
	eps := l.sender.cfg.endpoints
	target := l.APIURL
	if eps.root != "" {
		target = eps.root
	}

	// A proxy's own path for the tagged API has no GET: the POST alone
	// tells about the credentials there.
	if eps.root != "" || l.API != apiTagged {
		if err := c.probe(ctx, probeURL(eps, l.APIURL)); err != nil {
			return "", err
		}
	}
	tagged, err := c.accountMode(ctx, l.API, eps)
	if err != nil {
		return "", err
	}
	line, err := checkVerdict(l.API, tagged, target, eps)
	if err != nil {
		// Not wrapped: the text is what must not be printed unredacted.
		return "", errors.New(red.Redact(err.Error()))
	}
	return red.Redact(line), nil
}

// probeURL is the credential probe, GET /v1/metrics?length=1, under the API
// root; a proxy's own path (no known root) is asked as configured.
func probeURL(eps endpoints, configured string) string {
	base := configured
	if eps.root != "" {
		base = eps.root
	}
	u, err := url.Parse(base)
	if err != nil {
		return base // Init parsed it already
	}
	if eps.root != "" {
		// Joined as a path: api_url's query, if any, must stay the query.
		u.Path += legacyPath
		u.RawPath = ""
	}
	q := u.Query()
	q.Set("length", "1")
	u.RawQuery = q.Encode()
	return u.String()
}

// accountMode learns, from empty POSTs, whether the token may record and
// whether the account takes tags. With a proxy's own path only the
// configured API can be asked.
func (c *credCheck) accountMode(ctx context.Context, api string, eps endpoints) (tagged bool, err error) {
	if eps.root == "" && api == apiLegacy {
		return false, c.record(ctx, eps.legacy)
	}
	err = c.record(ctx, eps.tagged)
	if !errors.Is(err, errTagsNotEnabled) {
		return true, err
	}
	if eps.root == "" {
		return false, nil // api = "tagged" on an account without tags: checkVerdict says so
	}
	return false, c.record(ctx, eps.legacy)
}

// checkVerdict is the OK line, or the error when api does not suit the
// account.
func checkVerdict(api string, tagged bool, target string, eps endpoints) (string, error) {
	ok := "OK: " + target + " accepted the credentials, with record access; "
	switch {
	case tagged && api == apiAuto:
		return ok + `the account takes tag-based measurements (api = "auto" will write tags to ` + eps.tagged.url + ")", nil
	case tagged && api == apiTagged:
		return ok + `the account takes tag-based measurements (api = "tagged")`, nil
	case tagged:
		return ok + `the account takes tag-based measurements, but api = "legacy" writes gauges with sources (api = "auto" or "tagged" would write tags)`, nil
	case api == apiAuto:
		return ok + `the account has no tag-based measurements (api = "auto" will write gauges with sources to ` + eps.legacy.url + ")", nil
	case api == apiLegacy:
		return ok + `the account has no tag-based measurements (api = "legacy")`, nil
	}
	return "", fmt.Errorf(`%s accepted the credentials, but the account has no tag-based measurements and api = "tagged": set api = "legacy" or "auto"`, target)
}

// credCheck sends the check's requests with the plugin's client: its TLS,
// proxy and timeout settings, and no redirect following. What it prints of
// URLs, headers and answers passes red.
type credCheck struct {
	s                *sender
	auth             *delivery.Credentials
	red              *redact.Secrets
	credentialsInURL bool
}

// answer is a response: status, headers and the redacted start of the body.
type answer struct {
	status int
	header http.Header
	body   []byte
	// credentialsInURL: a 401 is about the credentials in api_url, not
	// about api_user and api_token.
	credentialsInURL bool
}

func (c *credCheck) probe(ctx context.Context, u string) error {
	a, err := c.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	return probeAnswer(a, c.shownProbeURL(u))
}

// shownProbeURL is the probe's URL for messages: redacted, but with the
// length=1 this check added itself still readable (the redaction masks
// every query value).
func (c *credCheck) shownProbeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return c.red.Redact(u)
	}
	q := p.Query()
	q.Del("length")
	p.RawQuery = q.Encode()
	sep := "?"
	if p.RawQuery != "" {
		sep = "&"
	}
	return c.red.Redact(p.String()) + sep + "length=1"
}

func (c *credCheck) record(ctx context.Context, ep endpoint) error {
	body := emptyLegacy
	if ep.tagged {
		body = emptyTagged
	}
	a, err := c.do(ctx, http.MethodPost, ep.url, body)
	if err != nil {
		return err
	}
	return recordAnswer(a, endpoint{url: c.red.Redact(ep.url), tagged: ep.tagged})
}

func (c *credCheck) do(ctx context.Context, method, u string, body []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.cfg.timeout) // the request and reading its answer
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("creating request: %w", err)
	}
	c.s.core.SetRequestHeaders(req.Header, c.auth, body != nil, false)
	req.Header.Set("User-Agent", req.Header.Get("User-Agent")+CheckUserAgentSuffix)
	resp, err := c.s.client().Do(req)
	if err != nil {
		return answer{}, transportError(err, req.URL, c.proxyFor(req), c.s.cfg.timeout)
	}
	defer resp.Body.Close()
	// A cut-off body is judged by what arrived: the status says the most.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead)) //nolint:errcheck // partial text is enough
	// An SSO page or proxy may echo the token, in the body or in a redirect.
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", c.red.Redact(loc))
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: []byte(c.red.Redact(string(raw))),
		credentialsInURL: c.credentialsInURL}, nil
}

// proxyFor is the proxy the request went through, for messages: "" if none.
func (c *credCheck) proxyFor(req *http.Request) string {
	t, ok := c.s.client().Transport.(*http.Transport)
	if !ok || t.Proxy == nil {
		return ""
	}
	p, err := t.Proxy(req)
	if err != nil || p == nil {
		return ""
	}
	return withoutUser(p)
}

// probeAnswer judges the answer to GET /v1/metrics?length=1.
func probeAnswer(a answer, u string) error {
	if a.status == http.StatusOK {
		var doc struct {
			Metrics json.RawMessage `json:"metrics"`
		}
		if json.Unmarshal(a.body, &doc) != nil || doc.Metrics == nil {
			return fmt.Errorf("the answer to GET %s was 200 with %s, which is not the Librato API (a proxy or captive portal?): check api_url",
				u, excerpt(a.body))
		}
		return nil
	}
	return answerError(a, "GET "+u)
}

// recordAnswer judges the answer to an empty POST: Librato's 400/422 (or a
// 2xx) means the token may record; 403 "not enabled" is the legacy-only
// account's answer on the tagged endpoint.
func recordAnswer(a answer, ep endpoint) error {
	var doc map[string]json.RawMessage
	isJSON := json.Unmarshal(a.body, &doc) == nil
	switch {
	case a.status/100 == 2:
		return nil
	case (a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity) && isJSON:
		return nil
	case a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity:
		return fmt.Errorf("the answer to POST %s was %d with %s, not Librato's JSON (a proxy or firewall in the way?): check api_url and http_proxy_url",
			ep.url, a.status, excerpt(a.body))
	case ep.tagged && delivery.TagsNotEnabled(a.status, a.body):
		return errTagsNotEnabled
	case a.status == http.StatusForbidden && !isRateLimit(a.body) && !delivery.WantsHTTPS(a.body):
		return fmt.Errorf("the answer to POST %s was 403, so api_token may read but not record: use a token with record access (%s)",
			ep.url, excerpt(a.body))
	}
	return answerError(a, "POST "+ep.url)
}

// answerError names the setting behind an unwanted answer, in the words
// delivery errors use (delivery.Advice).
func answerError(a answer, req string) error {
	text := excerpt(a.body)
	if a.status >= 300 && a.status < 400 {
		return fmt.Errorf("%s: %w", req, redirectError(a.status, a.header.Get("Location")))
	}
	if a.status == http.StatusUnauthorized && a.credentialsInURL {
		return fmt.Errorf("%s answered 401, %s (%s)", req, delivery.AdviceCredentialsInURL, text)
	}
	if advice := delivery.Advice(a.status, a.body); advice != "" {
		return fmt.Errorf("%s answered %d, %s (%s)", req, a.status, advice, text)
	}
	return fmt.Errorf("%s answered %d: %s", req, a.status, text)
}

// transportError names the setting behind a request that got no answer.
// The proxy, if any, is named without its credentials.
func transportError(err error, u *url.URL, proxy string, timeout time.Duration) error {
	host := u.Host
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		badHost     x509.HostnameError
		badCert     x509.CertificateInvalidError
		notTLS      tls.RecordHeaderError
		opErr       *net.OpError
		dnsErr      *net.DNSError
		netErr      net.Error
		viaProxyMsg = ""
	)
	if proxy != "" {
		viaProxyMsg = " through the proxy " + proxy
	}
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%s: the server's certificate is not signed by a trusted CA (%w): "+
			"set tls_ca to the CA that signed it (insecure_skip_verify = true only for tests)", host, err)
	case errors.As(err, &badHost):
		return fmt.Errorf("%s: the server's certificate is not valid for this name (%w): "+
			"check the api_url host, or set tls_server_name to a name the certificate holds", host, err)
	case errors.As(err, &badCert):
		return fmt.Errorf("%s: the server's certificate is invalid (%w): check tls_ca and the server's certificate", host, err)
	// net/http replaces the RecordHeaderError of an HTTP answer by this text.
	case errors.As(err, &notTLS) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%s%s does not speak TLS (%w): check the scheme of api_url (https://) and tls_* settings", host, viaProxyMsg, err)
	case errors.As(err, &opErr) && opErr.Op == "proxyconnect":
		return fmt.Errorf("cannot reach the proxy %s (%w): check http_proxy_url, or HTTPS_PROXY/HTTP_PROXY in the environment", proxy, err)
	case proxy != "" && !errors.As(err, &netErr):
		// CONNECT refused by the proxy: Go reports only the proxy's status text.
		return fmt.Errorf("the proxy %s refused to connect to %s (%w): check http_proxy_url, or HTTPS_PROXY/HTTP_PROXY in the environment",
			proxy, host, err)
	case errors.As(err, &dnsErr) && unresolvedDefaultHost(err):
		return fmt.Errorf("the host of api_url, %s, is not known (%w): %s", host, err, serviceStatusHint)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("the host of api_url, %s, is not known (%w): check api_url", host, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing answers at %s%s (connection refused): check the host and port of api_url", host, viaProxyMsg)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("no answer from %s%s within %s: check api_url, a firewall in the way, or raise timeout", host, viaProxyMsg, timeout)
	}
	return fmt.Errorf("cannot reach %s%s (%w): check api_url and the proxy settings (http_proxy_url, HTTPS_PROXY)", host, viaProxyMsg, err)
}
