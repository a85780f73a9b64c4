// Package librato is a Telegraf output that writes metrics to Librato. It is a
// drop-in replacement for Telegraf's built-in outputs.librato: the same
// configuration keys, the same gauge names and sources, but it never wedges on
// a bad point, drops a measurement only on proof that Librato refuses it,
// does not resend what Librato acknowledged, and posts batches concurrently.
package librato

import (
	_ "embed"
	"errors"
	"hash/maphash"
	"net/http"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/outputs"

	"github.com/seed-d22a899f/librato/internal/delivery"
	"github.com/seed-d22a899f/librato/internal/redact"
)

//go:embed sample.conf
var sampleConfig string

// Librato is the outputs.librato plugin.
type Librato struct {
	APIUser  config.Secret `toml:"api_user"`
	APIToken config.Secret `toml:"api_token"`
	APIURL   string        `toml:"api_url"`
	API      string        `toml:"api"`

	Template          string   `toml:"template"`
	Templates         []string `toml:"templates"`
	SourceTag         string   `toml:"source_tag" deprecated:"1.0.0;2.0.0;use 'template' instead"`
	SourceOverrideTag string   `toml:"source_override_tag"`
	DefaultSource     string   `toml:"default_source"`

	TagsInclude []string          `toml:"tags_include"`
	TagsExclude []string          `toml:"tags_exclude"`
	ExtraTags   map[string]string `toml:"extra_tags"`
	Summaries   bool              `toml:"summaries"`

	MaxNewSeries       int             `toml:"max_new_series"`
	MaxNewSeriesPeriod config.Duration `toml:"max_new_series_period"`

	MeasurementsPerRequest int             `toml:"measurements_per_request"`
	ConcurrentWrites       int             `toml:"concurrent_writes"`
	Timeout                config.Duration `toml:"timeout"`
	RetryBudget            config.Duration `toml:"retry_budget"`
	MaxRetryAfter          config.Duration `toml:"max_retry_after"`
	ContentEncoding        string          `toml:"content_encoding"`
	Debug                  bool            `toml:"debug"`

	tls.ClientConfig
	proxy.HTTPProxy

	Log telegraf.Logger `toml:"-"`

	// credentialsInURL: api_user and api_token came from api_url, so
	// advice about credentials must name api_url.
	credentialsInURL bool

	// transport, when set before Init, replaces the HTTP transport: tests
	// put an in-memory Librato there (no sockets).
	transport http.RoundTripper
	// clock, when set before Init, replaces the delivery core's wall clock
	// (the simulation's fake time).
	clock delivery.Clock
	// jitter, when set before Init, replaces the back-off's random
	// source: the simulation seeds it.
	jitter func() float64

	// conv holds a converter per API (index: tagged); with api = "auto"
	// both, since the account's answers choose.
	conv   [2]*converter
	apis   apiChoice
	sender *sender
	stats  *stats

	// tagSeed seeds both converters' tag-set hashes, so that a measurement
	// has the same ledger key in both APIs.
	tagSeed maphash.Seed

	// mu serialises Connect, Write and Close: the converter's buffers, the
	// delivery ledger and the HTTP client belong to one of them at a time.
	// Telegraf never overlaps them; where something else does, Connect and
	// Close wait for the Write in flight, which retry_budget bounds.
	mu     sync.Mutex
	ledger ledger

	// The screens between conversion and delivery (screen.go), also
	// guarded by mu.
	guard      *seriesGuard // nil unless max_new_series is set
	collisions collisionFinder
}

func (*Librato) SampleConfig() string {
	return sampleConfig
}

// Init validates the configuration and prepares everything that does not
// touch the network, so a bad config fails at startup with a clear message.
func (l *Librato) Init() error {
	if l.Log == nil {
		return errors.New("no logger set")
	}
	endpoint, eps, err := l.checkConfig()
	if err != nil {
		return err
	}

	l.stats = newStats(withoutUser(endpoint))
	l.tagSeed = maphash.MakeSeed()
	names := newNameCache() // shared by both APIs' converters (api = "auto")
	for _, tagged := range []bool{false, true} {
		if l.API == apiAuto || tagged == (l.API == apiTagged) {
			cfg := l.converterConfig(tagged)
			cfg.names = names
			if l.conv[index(tagged)], err = newConverter(cfg, l.stats, l.Log); err != nil {
				return l.redactError(err)
			}
		}
	}
	if err := l.initScreens(); err != nil {
		return l.redactError(err)
	}
	l.sender = newSender(l.senderConfig(eps), l.stats, l.Log)
	if l.guard != nil {
		l.guard.now = l.sender.now // the same clock as every other decision
	}
	// One clock for deadlines and decisions: a simulation's fake time
	// drives the 24-hour re-check too.
	l.apis = apiChoice{mode: l.API, now: l.sender.now, logLearned: l.logLearnedAPI}
	return nil
}

func index(tagged bool) int {
	if tagged {
		return 1
	}
	return 0
}

func (l *Librato) logLearnedAPI(tagged bool) {
	if tagged {
		l.Log.Infof("api = \"auto\": the account takes tag-based measurements; writing to %s", redact.URL(l.sender.cfg.endpoints.tagged.url))
		return
	}
	l.Log.Infof("api = \"auto\": the account has no tag-based measurements; writing gauges with sources to %s (asking again in %s)",
		redact.URL(l.sender.cfg.endpoints.legacy.url), recheckTagged)
}

func (l *Librato) converterConfig(tagged bool) converterConfig {
	return converterConfig{
		tagged:            tagged,
		template:          l.Template,
		templates:         l.Templates,
		sourceOverrideTag: l.SourceOverrideTag,
		defaultSource:     l.DefaultSource,
		tagsInclude:       l.TagsInclude,
		tagsExclude:       l.TagsExclude,
		extraTags:         l.ExtraTags,
		summaries:         l.Summaries,
		tagSeed:           l.tagSeed,
	}
}

func (l *Librato) senderConfig(eps endpoints) senderConfig {
	return senderConfig{
		endpoints:              eps,
		user:                   &l.APIUser,
		token:                  &l.APIToken,
		timeout:                time.Duration(l.Timeout),
		retryBudget:            time.Duration(l.RetryBudget),
		maxRetryAfter:          time.Duration(l.MaxRetryAfter),
		measurementsPerRequest: l.MeasurementsPerRequest,
		concurrency:            l.ConcurrentWrites,
		gzip:                   l.ContentEncoding == "gzip",
		debug:                  l.Debug,
		tls:                    &l.ClientConfig,
		proxy:                  &l.HTTPProxy,
		transport:              l.transport,
		controlSource:          l.DefaultSource,
		clock:                  l.clock,
		jitter:                 l.jitter,
		credentialsInURL:       l.credentialsInURL,
	}
}

// Connect builds the HTTP client, closing the connections of the previous
// one. It does no network I/O: Telegraf aborts startup on a Connect error,
// and an unreachable API must not do that.
func (l *Librato) Connect() error {
	if l.sender == nil {
		return errNotInitialised
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sender.connect()
}

// Write delivers the metrics. A nil error means every measurement was either
// accepted by Librato or dropped on proof of a permanent reason; an error
// means Telegraf should keep the metrics and call Write again, in which case
// the measurements Librato already accepted are not sent twice.
func (l *Librato) Write(metrics []telegraf.Metric) error {
	if len(metrics) == 0 {
		return nil
	}
	if l.sender == nil {
		return errNotInitialised
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.sender.connected() {
		return errors.New("not connected: Connect was not called, or Close was")
	}

	start := l.sender.now() // the delivery core's clock: a simulation's fake time
	now := l.apis.now()
	// A failed flush's retry goes to the API that flush used: it is the
	// same flush, whose answers are the evidence auto mode decides from.
	tagged := l.ledger.pendingTagged
	if !l.ledger.pending() {
		tagged = l.apis.forFlush(now)
	}
	err := l.deliver(metrics, tagged, start)
	if tagged && l.fallBack(l.sender.lastAccepted(), err, now) {
		// What the tagged API stored is in the ledger, under keys the
		// legacy conversion shares: it is not sent again. The same Write's
		// deadline holds for the second try.
		l.settleScreens(false)
		l.conv[index(true)].release()
		tagged = false
		err = l.deliver(metrics, false, start)
	}
	conv := l.conv[index(tagged)]
	l.settleScreens(err == nil)
	if err == nil {
		conv.reportDrops()
	}
	conv.release()
	if err != nil {
		l.ledger.pendingTagged = tagged
	}
	return err
}

// fallBack learns from a tagged flush's answers (api = "auto") and reports
// whether the flush must go to the legacy API instead: Librato said the
// account has no tag-based measurements, or nothing decided that it has and
// the tagged conversion dropped metrics for having no tags, which the legacy
// API can take (a tagged flush that succeeded without an acceptance stored
// nothing, so the legacy API gets all of it). A failure that decided nothing
// keeps the flush on tagged, for Telegraf's retry.
func (l *Librato) fallBack(accepted bool, err error, now time.Time) bool {
	if l.API != apiAuto {
		return false
	}
	switch {
	case errors.Is(err, errTagsNotEnabled):
		l.apis.learn(false, now)
		return true
	case accepted:
		l.apis.learn(true, now)
	}
	return err == nil && l.taglessUndecided(l.conv[index(true)])
}

// taglessUndecided reports whether the tagged conversion dropped metrics
// for having no tags while api = "auto" does not know that the account
// takes tagged measurements: dropping them would be an inference, and the
// legacy API can take them (see apiChoice).
func (l *Librato) taglessUndecided(conv *converter) bool {
	n := conv.dropped(reasonNoTags)
	if n == 0 || l.apis.taggedKnown() {
		return false
	}
	l.Log.Debugf(`api = "auto": %d measurement(s) have no tags and the account is not known to take tagged ones; this flush goes to %s`,
		n, redact.URL(l.sender.cfg.endpoints.legacy.url))
	return true
}

// deliver converts, screens and delivers metrics to one API. The caller
// settles the screens, reports the API's converter's drops and releases it
// once it knows which API the Write finally used.
func (l *Librato) deliver(metrics []telegraf.Metric, tagged bool, start time.Time) error {
	conv := l.conv[index(tagged)]
	points := l.screen(metrics, conv.convert(metrics), conv, tagged)
	ep := l.sender.cfg.endpoints.legacy
	if tagged {
		ep = l.sender.cfg.endpoints.tagged
	}
	return l.sender.deliver(points, &l.ledger, ep, start)
}

// Close closes the HTTP client's connections; Connect opens it again.
func (l *Librato) Close() error {
	if l.sender == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sender.close()
	return nil
}

var errNotInitialised = errors.New("plugin not initialised: Init was not called or failed")

func init() {
	outputs.Add("librato", func() telegraf.Output { return newLibrato() })
}
