package delivery

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/selfstat"
)

// ErrTagsNotEnabled marks Librato's 403 "Tag based measurements are not
// enabled for this account", the answer api = "auto" learns from. Deliver's
// error wraps it (errors.Is) when that was why a tagged flush failed.
var ErrTagsNotEnabled = errors.New("tag-based measurements are not enabled for this account")

// Endpoint is where one API's requests go.
type Endpoint struct {
	URL    string
	Tagged bool // the tagged API (/v1/measurements), else the legacy one
}

// Stats are the self-metrics the delivery core updates. The caller builds
// and registers them (they carry its tags); a nil Stat is not allowed.
type Stats struct {
	Written   selfstat.Stat // measurements Librato accepted
	Rejected  selfstat.Stat // measurements dropped on proof (rejected_by_api)
	Requests  selfstat.Stat
	Retries   selfstat.Stat
	APIFailed selfstat.Stat // failures a tagged 2xx summary reported
	// RateLimit and RateRemaining: the tightest X-Librato-RateLimit-*
	// budget of the last answer.
	RateLimit, RateRemaining selfstat.Stat
	RequestTime              selfstat.Stat
	Controls                 selfstat.Stat // control requests sent (evidence.go)
}

// Config is everything the delivery core needs. Zero Clock means the wall
// clock; a non-nil Transport replaces the HTTP transport built from TLS and
// Proxy (tests and the simulation put an in-memory Librato there).
type Config struct {
	User, Token            *config.Secret
	Timeout, RetryBudget   time.Duration
	MaxRetryAfter          time.Duration
	MeasurementsPerRequest int
	Concurrency            int
	Gzip                   bool
	Debug                  bool
	TLS                    *tls.ClientConfig
	Proxy                  *proxy.HTTPProxy
	Transport              http.RoundTripper
	UserAgent              string
	// ControlSource is the source of the control measurement
	// (default_source); empty means "telegraf-librato".
	ControlSource string
	Clock         Clock
	// CredentialsInURL: api_user and api_token came from api_url, so a 401
	// names api_url (AdviceCredentialsInURL) rather than those options.
	CredentialsInURL bool
	// Jitter draws the random half of each back-off, in [0, 1); nil is
	// math/rand. A simulation seeds it so a seed replays its waits.
	Jitter func() float64
	Log    telegraf.Logger
	Stats  Stats
}

// Result is what Deliver settled.
type Result struct {
	// Settled[i] is true when ms[i] (as Deliver left ms) was accepted or
	// dropped on proof.
	Settled []bool
	// Accepted: at least one request of this Deliver was accepted by the
	// endpoint, so it was reached and took data.
	Accepted bool
	// Proofs: one per measurement dropped as rejected_by_api.
	Proofs []Proof
}

// Sender owns the HTTP client and everything shared by the requests of all
// flushes: the rate-limit gate, the pacing and the pooled request buffers.
// Evidence about the endpoint is not shared: it lives in one flush.
type Sender struct {
	cfg       Config
	log       telegraf.Logger
	stats     Stats
	userAgent []string
	clock     Clock

	client    *http.Client
	admission *admission
	control   [2]Series // the control measurement's, legacy and tagged
	clampOnce sync.Once
	limit     *bodyLimit // the endpoint's body limit, learned from 413s
	bufs      sync.Pool  // *payload
	gzips     sync.Pool  // *gzip.Writer

	// creds are the credentials of the connection, read by the first
	// flush after Connect; rereadCreds: the last flush failed, so the next
	// one reads the secrets again (credentials.go).
	creds       *Credentials
	rereadCreds bool
}

// New returns a Sender for cfg; Connect makes it ready to Deliver.
func New(cfg Config) *Sender {
	if cfg.Jitter == nil {
		cfg.Jitter = randomJitter
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	s := &Sender{cfg: cfg, log: cfg.Log, stats: cfg.Stats, userAgent: []string{cfg.UserAgent}, clock: cfg.Clock}
	s.control = controlSeries(cfg.ControlSource)
	s.bufs.New = func() any { return &payload{pool: &s.bufs} }
	s.admission = newAdmission(s.clock, cfg.MaxRetryAfter, s.logClampedPause)
	s.limit = newBodyLimit(maxBodyBytes)
	return s
}

// logClampedPause warns once per process: a proxy that always sends an
// absurd Retry-After must not fill the log.
func (s *Sender) logClampedPause(hint, pause time.Duration) {
	s.clampOnce.Do(func() {
		s.log.Warnf("Librato asked to pause for %s; pausing for max_retry_after (%s) instead, "+
			"then one request tests whether sending is allowed again (logged once)", hint.Round(time.Second), pause)
	})
}

// Connect builds the HTTP client, closing the connections of the previous
// one. It does no network I/O.
func (s *Sender) Connect() error {
	rt := s.cfg.Transport
	if rt == nil {
		t, err := s.httpTransport()
		if err != nil {
			return err
		}
		rt = t
	}
	s.Close() // a new client must not leave the old one's connections open
	s.client = &http.Client{Transport: rt, CheckRedirect: neverFollow}
	return nil
}

// Close closes the client's connections and forgets it; Connect opens them
// again. No request is in flight (the caller serialises Deliver and Close),
// so every connection is idle.
func (s *Sender) Close() {
	s.forgetCredentials()
	if s.client != nil {
		s.client.CloseIdleConnections()
		s.client = nil
	}
}

// Connected reports whether Connect was called since the last Close.
func (s *Sender) Connected() bool { return s.client != nil }

// Client is the HTTP client of the last Connect (nil before it), with the
// configured transport and no redirect following, for the credential check.
func (s *Sender) Client() *http.Client { return s.client }

// Now is the Sender's clock's time.
func (s *Sender) Now() time.Time { return s.clock.Now() }
