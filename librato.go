// Package librato is a Telegraf output that writes metrics to Librato. It is a
// drop-in replacement for Telegraf's built-in outputs.librato: the same
// configuration keys, the same gauge names and sources, but it never wedges on
// a bad point, never sends an accepted measurement twice, and posts batches
// concurrently.
package librato

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/outputs"
)

//go:embed sample.conf
var sampleConfig string

const (
	legacyAPIURL = "https://metrics-api.librato.com/v1/metrics"
	taggedAPIURL = "https://metrics-api.librato.com/v1/measurements"

	apiLegacy = "legacy"
	apiTagged = "tagged"

	defaultTemplate               = "host"
	defaultTimeout                = config.Duration(5 * time.Second)
	defaultRetryBudget            = config.Duration(5 * time.Second)
	defaultMeasurementsPerRequest = 300
	// Ten requests in flight move 10 × 300 measurements per ~600 ms round trip
	// (5,000/s against the real API): several busy hosts' worth, while staying
	// far below the request concurrency at which Librato starts rate limiting.
	defaultConcurrentWrites = 10
)

// Librato is the outputs.librato plugin.
type Librato struct {
	APIUser  config.Secret `toml:"api_user"`
	APIToken config.Secret `toml:"api_token"`
	APIURL   string        `toml:"api_url"`
	API      string        `toml:"api"`

	Template          string `toml:"template"`
	SourceTag         string `toml:"source_tag" deprecated:"1.0.0;2.0.0;use 'template' instead"`
	SourceOverrideTag string `toml:"source_override_tag"`
	DefaultSource     string `toml:"default_source"`

	TagsInclude []string          `toml:"tags_include"`
	TagsExclude []string          `toml:"tags_exclude"`
	ExtraTags   map[string]string `toml:"extra_tags"`
	Summaries   bool              `toml:"summaries"`

	MeasurementsPerRequest int             `toml:"measurements_per_request"`
	ConcurrentWrites       int             `toml:"concurrent_writes"`
	Timeout                config.Duration `toml:"timeout"`
	RetryBudget            config.Duration `toml:"retry_budget"`
	ContentEncoding        string          `toml:"content_encoding"`
	Debug                  bool            `toml:"debug"`

	tls.ClientConfig
	proxy.HTTPProxy

	Log telegraf.Logger `toml:"-"`

	conv   *converter
	sender *sender
	stats  *stats

	// writeMu serialises Write calls: the converter's buffers and the
	// delivery ledger belong to one flush at a time.
	writeMu sync.Mutex
	ledger  ledger
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
	endpoint, err := l.resolveEndpoint()
	if err != nil {
		return err
	}
	if err := l.checkSecretRefs(); err != nil {
		return err
	}
	if err := l.resolveTemplate(); err != nil {
		return err
	}
	if err := l.checkLimits(); err != nil {
		return err
	}

	l.stats = newStats(endpoint.Redacted())
	l.conv, err = newConverter(l.converterConfig(), l.stats, l.Log)
	if err != nil {
		return err
	}
	l.sender, err = newSender(l.senderConfig(endpoint), l.stats, l.Log)
	return err
}

// resolveEndpoint picks the URL for the API mode, moves credentials embedded
// in it into secrets (so the URL can be logged) and checks both are present.
func (l *Librato) resolveEndpoint() (*url.URL, error) {
	switch l.API {
	case "":
		l.API = apiLegacy
	case apiLegacy, apiTagged:
	default:
		return nil, fmt.Errorf("invalid api %q: must be %q or %q", l.API, apiLegacy, apiTagged)
	}
	if l.APIURL == "" {
		l.APIURL = legacyAPIURL
		if l.API == apiTagged {
			l.APIURL = taggedAPIURL
		}
	}
	endpoint, err := url.Parse(l.APIURL)
	if err != nil {
		// url.Parse quotes the input, which may hold credentials.
		return nil, errors.New("invalid api_url: not a URL")
	}
	if endpoint.Scheme != "http" && endpoint.Scheme != "https" || endpoint.Host == "" {
		return nil, fmt.Errorf("invalid api_url %q: want an http(s) URL with a host", endpoint.Redacted())
	}
	if err := l.takeURLCredentials(endpoint); err != nil {
		return nil, err
	}
	l.APIURL = endpoint.String()

	if l.APIUser.Empty() {
		return nil, errors.New("api_user is required: set it to the Librato account email")
	}
	if l.APIToken.Empty() {
		return nil, errors.New("api_token is required: set it to a Librato API token with record access")
	}
	if endpoint.Scheme == "http" && !isLoopback(endpoint.Hostname()) {
		l.Log.Warnf("api_url %q is plain HTTP: Librato rejects requests that are not HTTPS", endpoint.Redacted())
	}
	return endpoint, nil
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
	user := []byte(endpoint.User.Username())
	token, _ := endpoint.User.Password()
	l.APIUser = config.NewSecret(user)
	l.APIToken = config.NewSecret([]byte(token))
	endpoint.User = nil
	return nil
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
	return nil
}

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
	switch l.ContentEncoding {
	case "", "identity":
		l.ContentEncoding = "identity"
	case "gzip":
	default:
		return fmt.Errorf("invalid content_encoding %q: must be \"identity\" or \"gzip\"", l.ContentEncoding)
	}
	return nil
}

func (l *Librato) converterConfig() converterConfig {
	return converterConfig{
		tagged:            l.API == apiTagged,
		template:          l.Template,
		sourceOverrideTag: l.SourceOverrideTag,
		defaultSource:     l.DefaultSource,
		tagsInclude:       l.TagsInclude,
		tagsExclude:       l.TagsExclude,
		extraTags:         l.ExtraTags,
		summaries:         l.Summaries,
	}
}

func (l *Librato) senderConfig(endpoint *url.URL) senderConfig {
	return senderConfig{
		url:                    endpoint.String(),
		tagged:                 l.API == apiTagged,
		user:                   &l.APIUser,
		token:                  &l.APIToken,
		timeout:                time.Duration(l.Timeout),
		retryBudget:            time.Duration(l.RetryBudget),
		measurementsPerRequest: l.MeasurementsPerRequest,
		concurrency:            l.ConcurrentWrites,
		gzip:                   l.ContentEncoding == "gzip",
		debug:                  l.Debug,
		tls:                    &l.ClientConfig,
		proxy:                  &l.HTTPProxy,
	}
}

// Connect builds the HTTP client. It does no network I/O: Telegraf aborts
// startup on a Connect error, and an unreachable API must not do that.
func (l *Librato) Connect() error {
	if l.sender == nil {
		return errors.New("plugin not initialised")
	}
	return l.sender.connect()
}

// Write delivers the metrics. A nil error means every measurement was either
// accepted by Librato or dropped for a logged, permanent reason; an error
// means Telegraf should keep the metrics and call Write again, in which case
// the measurements Librato already accepted are not sent twice.
func (l *Librato) Write(metrics []telegraf.Metric) error {
	if len(metrics) == 0 {
		return nil
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()

	points := l.conv.convert(metrics)
	return l.sender.deliver(points, &l.ledger)
}

// Close releases idle connections.
func (l *Librato) Close() error {
	if l.sender != nil {
		l.sender.close()
	}
	return nil
}

func newLibrato() *Librato {
	return &Librato{
		Timeout:                defaultTimeout,
		RetryBudget:            defaultRetryBudget,
		MeasurementsPerRequest: defaultMeasurementsPerRequest,
		ConcurrentWrites:       defaultConcurrentWrites,
	}
}

func init() {
	outputs.Add("librato", func() telegraf.Output { return newLibrato() })
}
