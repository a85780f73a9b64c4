package benchkit

import (
	"fmt"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/logger"
	"github.com/influxdata/telegraf/models"
	builtin "github.com/influxdata/telegraf/plugins/outputs/librato"
)

// Credentials of the benchmark plugins; the fake API requires them.
const (
	User  = "bench@example.com"
	Token = "bench-token-0123456789"
)

// Defaults of our plugin (sample.conf). The root package cannot be imported
// here (its benchmarks import this package), so callers outside it build
// the plugin from its exported fields with these; the root package's tests
// check that they match its constructor.
const (
	DefaultMeasurementsPerRequest = 300
	DefaultConcurrentWrites       = 10
	DefaultTimeout                = 5 * time.Second
	DefaultRetryBudget            = 5 * time.Second
	DefaultMaxRetryAfter          = time.Minute
)

// builtinPerRequest is the batch size hard-coded in the built-in plugin,
// which sends its requests one after the other.
const builtinPerRequest = 300

// Plugin is a plugin under test.
type Plugin struct {
	Name string
	// New returns the plugin configured as a user would configure it to
	// post to url: credentials and settings, but no logger, Init or Connect
	// — Open does those the way Telegraf does.
	New func(url string) telegraf.Output
	// Concurrency and PerRequest are the plugin's requests in flight and
	// measurements per request: the theoretical throughput is
	// Concurrency × PerRequest / latency.
	Concurrency, PerRequest int
}

// Builtin is Telegraf's own outputs.librato, built with its constructor as
// its registry entry does.
func Builtin() Plugin {
	return Plugin{
		Name: "built-in",
		New: func(url string) telegraf.Output {
			b := builtin.NewLibrato(url)
			b.APIUser = Secret(User)
			b.APIToken = Secret(Token)
			return b
		},
		Concurrency: 1,
		PerRequest:  builtinPerRequest,
	}
}

// Secret returns s as a Telegraf secret.
func Secret(s string) config.Secret { return config.NewSecret([]byte(s)) }

// Output is a plugin wrapped and started the way the Telegraf agent does it.
type Output struct {
	*models.RunningOutput
	Plugin telegraf.Output
}

// Open builds p for url inside a models.RunningOutput with a memory buffer
// and the given metric_batch_size, which sets Telegraf's logger on it, and
// runs Init and Connect.
func Open(p Plugin, url string, batchSize int) (*Output, error) {
	if err := setupLogging(); err != nil {
		return nil, err
	}
	plugin := p.New(url)
	ro, err := models.NewRunningOutput(plugin, &models.OutputConfig{Name: "librato"}, batchSize, max(batchSize, models.DefaultMetricBufferLimit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := ro.Init(); err != nil {
		return nil, fmt.Errorf("%s: init: %w", p.Name, err)
	}
	if err := ro.Connect(); err != nil {
		return nil, fmt.Errorf("%s: connect: %w", p.Name, err)
	}
	return &Output{RunningOutput: ro, Plugin: plugin}, nil
}

// Flush hands ms to the output, as the agent does with a single output
// (AddMetricNoCopy: the output owns them), and writes its buffer.
func (o *Output) Flush(ms []telegraf.Metric) error {
	for _, m := range ms {
		o.AddMetricNoCopy(m)
	}
	return o.Write()
}

var (
	loggingOnce sync.Once
	errLogging  error
)

// setupLogging installs Telegraf's text logger, as the agent does at
// startup, at its quiet level. Without it Telegraf's loggers keep every
// message, debug included, in an unbounded early-log list, which would
// make the built-in plugin's per-gauge debug lines a memory leak here.
func setupLogging() error {
	loggingOnce.Do(func() {
		// Errors only: the log is the benchmark's progress output, and
		// warnings about the workload (collapsed series) would clutter it.
		errLogging = logger.SetupLogging(&logger.Config{Quiet: true})
	})
	return errLogging
}

// Nop is an output that accepts every batch and does nothing with it:
// through a RunningOutput it measures what Telegraf itself costs per
// metric, which both plugins pay on top of their own work.
func Nop() Plugin {
	return Plugin{Name: "telegraf only", New: func(string) telegraf.Output { return &nopOutput{} }}
}

// nopOutput has the options of the [[outputs.librato]] tables the
// benchmarks load, so the config loader takes them for it too.
type nopOutput struct {
	APIUser  config.Secret `toml:"api_user"`
	APIToken config.Secret `toml:"api_token"`
	APIURL   string        `toml:"api_url"`
}

func (nopOutput) SampleConfig() string          { return "" }
func (nopOutput) Connect() error                { return nil }
func (nopOutput) Close() error                  { return nil }
func (nopOutput) Write([]telegraf.Metric) error { return nil }
