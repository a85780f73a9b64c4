package librato

import (
	"errors"
	"net/http"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/common/tls"

	"github.com/seed-d22a899f/librato/internal/delivery"
)

// The plugin's side of the delivery core (internal/delivery): the ledger
// keeps Telegraf's retries from resending what a failed flush settled, and
// the core sends the rest.

const modulePath = "github.com/seed-d22a899f/librato"

// maxResponseRead bounds what the credential check reads of an answer.
const maxResponseRead = delivery.MaxResponseRead

// maxPooledBody is the largest request buffer the core keeps for reuse.
const maxPooledBody = delivery.MaxPooledBody

// errDeadline: a Write's time (timeout + retry_budget) ran out.
var errDeadline = delivery.ErrDeadline

// The extra requests a flush may spend on splitting and isolation.
const (
	splitRequests         = delivery.ExtraRequests
	splitRequestsPerBatch = delivery.ExtraRequestsPerBatch
)

type senderConfig struct {
	endpoints              endpoints
	user, token            *config.Secret
	timeout, retryBudget   time.Duration
	measurementsPerRequest int
	concurrency            int
	gzip                   bool
	debug                  bool
	maxRetryAfter          time.Duration
	tls                    *tls.ClientConfig
	proxy                  *proxy.HTTPProxy
	// transport, when set, replaces the HTTP transport: the simulation
	// puts its in-memory Librato there.
	transport http.RoundTripper
	// controlSource is the control measurement's source (default_source).
	controlSource string
	// clock, when set, replaces the wall clock of the delivery core.
	clock delivery.Clock
	// jitter, when set, replaces the back-off's random source.
	jitter func() float64
	// credentialsInURL: api_user and api_token came from api_url.
	credentialsInURL bool
}

// sender is the plugin's handle on the delivery core.
type sender struct {
	cfg  senderConfig
	core *delivery.Sender
	// stats: the ledger counts what it keeps from being resent.
	stats *stats
	// accepted: a request of the last deliver was accepted by its
	// endpoint, the only evidence api = "auto" may learn from.
	accepted bool
}

func newSender(cfg senderConfig, st *stats, log telegraf.Logger) *sender {
	core := delivery.New(delivery.Config{
		User:                   cfg.user,
		Token:                  cfg.token,
		Timeout:                cfg.timeout,
		RetryBudget:            cfg.retryBudget,
		MaxRetryAfter:          cfg.maxRetryAfter,
		MeasurementsPerRequest: cfg.measurementsPerRequest,
		Concurrency:            cfg.concurrency,
		Gzip:                   cfg.gzip,
		Debug:                  cfg.debug,
		TLS:                    cfg.tls,
		Proxy:                  cfg.proxy,
		Transport:              cfg.transport,
		UserAgent:              userAgent(),
		ControlSource:          cfg.controlSource,
		Clock:                  cfg.clock,
		Jitter:                 cfg.jitter,
		CredentialsInURL:       cfg.credentialsInURL,
		Log:                    log,
		Stats:                  st.delivery(),
	})
	return &sender{cfg: cfg, core: core, stats: st}
}

// delivery is the part of the self-metrics the delivery core updates.
func (st *stats) delivery() delivery.Stats {
	return delivery.Stats{
		Written:       st.written,
		Rejected:      st.dropped[reasonRejected],
		Requests:      st.requests,
		Retries:       st.retries,
		APIFailed:     st.apiFailed,
		RateLimit:     st.rateLimit,
		RateRemaining: st.rateRemaining,
		RequestTime:   st.requestTime,
		Controls:      st.controls,
	}
}

func userAgent() string {
	return "telegraf-output-librato/" + Version()
}

func (s *sender) connect() error       { return s.core.Connect() }
func (s *sender) close()               { s.core.Close() }
func (s *sender) connected() bool      { return s.core.Connected() }
func (s *sender) client() *http.Client { return s.core.Client() }

// now is the delivery core's clock: a Write's deadline must be on the same
// clock as the waits it bounds.
func (s *sender) now() time.Time { return s.core.Now() }

// lastAccepted reports whether the last deliver had a request accepted at
// its endpoint (a flush that sent nothing, or was refused, had none).
func (s *sender) lastAccepted() bool { return s.accepted }

// deliver sends pts and returns nil when every point is settled. On error,
// the ledger remembers what was settled, so that Telegraf's retry of the same
// metrics does not send those again. start is when the Write began: its
// deadline holds for everything the Write sends.
func (s *sender) deliver(pts []point, led *ledger, ep endpoint, start time.Time) error {
	s.accepted = false
	if !s.connected() {
		return errors.New("not connected: Connect was not called")
	}
	pts, carried := led.skipSettled(pts, s.stats)
	if len(pts) == 0 {
		led.reset()
		return nil
	}
	res, err := s.core.Deliver(pts, delivery.Endpoint{URL: ep.url, Tagged: ep.tagged}, start)
	s.accepted = res.Accepted
	if err == nil {
		led.reset()
		return nil
	}
	if res.Settled == nil { // nothing was sent
		res.Settled = make([]bool, len(pts))
	}
	led.record(pts, res.Settled, carried)
	// Here rather than in the delivery core: only the plugin knows which
	// host is Librato's own.
	return withServiceStatus(err)
}

// The wire format, shared with the converter (tags are encoded once per
// series) and the tests.

func appendTagObject(buf []byte, pairs [][2]string) []byte {
	return delivery.AppendTagObject(buf, pairs)
}

func encodeLegacy(buf []byte, pts []point) []byte { return delivery.EncodeLegacy(buf, pts) }
func encodeTagged(buf []byte, pts []point) []byte { return delivery.EncodeTagged(buf, pts) }

// For the credential check's messages.

func excerpt(body []byte) string { return delivery.Excerpt(body) }
func redirectError(status int, location string) error {
	return delivery.RedirectError(status, location)
}
func isRateLimit(body []byte) bool { return delivery.IsRateLimit(body) }
