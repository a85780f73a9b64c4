// Package listener is inputs.librato_listener: a Telegraf service input that
// answers like the Librato API, so clients that speak Librato's legacy
// (POST /v1/metrics) or tagged (POST /v1/measurements) API can send to
// Telegraf by changing one URL.
//
// A request is answered 2xx only after Telegraf's outputs have written every
// metric of it (tracking accumulator); anything else gets 503, which Librato
// clients retry, so a client is never told "stored" for something dropped.
package listener

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	common_tls "github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/inputs"
)

//go:embed sample.conf
var sampleConfig string

const (
	defaultAddress         = ":8080"
	defaultMaxBodySize     = 3 * 1000 * 1000 // Librato's documented 3 MB
	defaultReadTimeout     = 10 * time.Second
	defaultDeliveryTimeout = 10 * time.Second
	// writeTimeoutMargin is added to delivery_timeout for the default
	// write_timeout: the answer is written after the delivery wait.
	writeTimeoutMargin = 10 * time.Second
	defaultMaxRequests = 1000
	defaultMaxMetrics  = 10000 // the agent's default metric_buffer_limit
	defaultSourceTag   = "source"
	shutdownGrace      = 5 * time.Second
	// Pooled scratch space above these sizes is dropped after the request.
	maxPooledBytes        = 8 << 20
	maxPooledMeasurements = 4096
)

// Listener is the plugin; the exported fields are its configuration.
type Listener struct {
	ServiceAddress string          `toml:"service_address"`
	BasicUsername  config.Secret   `toml:"basic_username"`
	BasicPassword  config.Secret   `toml:"basic_password"`
	Tokens         []config.Secret `toml:"tokens"`
	SourceTag      string          `toml:"source_tag"`
	MaxBodySize    config.Size     `toml:"max_body_size"`
	ReadTimeout    config.Duration `toml:"read_timeout"`
	WriteTimeout   config.Duration `toml:"write_timeout"`

	DeliveryTimeout        config.Duration `toml:"delivery_timeout"`
	MaxUndeliveredRequests int             `toml:"max_undelivered_requests"`
	MaxUndeliveredMetrics  int             `toml:"max_undelivered_metrics"`

	MaxAge    config.Duration `toml:"max_age"`
	MaxFuture config.Duration `toml:"max_future"`

	common_tls.ServerConfig

	Log telegraf.Logger `toml:"-"`

	// now is the receive-time clock; tests replace it.
	now func() time.Time

	tlsConf  *tls.Config
	creds    *credentials
	listener net.Listener
	server   *http.Server
	tracker  *tracker
	stats    *stats
	bufs     sync.Pool
	wg       sync.WaitGroup
}

func init() {
	inputs.Add("librato_listener", func() telegraf.Input { return New() })
}

// New returns a listener with the defaults the sample configuration shows.
func New() *Listener {
	return &Listener{
		ServiceAddress:         defaultAddress,
		SourceTag:              defaultSourceTag,
		MaxBodySize:            config.Size(defaultMaxBodySize),
		ReadTimeout:            config.Duration(defaultReadTimeout),
		DeliveryTimeout:        config.Duration(defaultDeliveryTimeout),
		MaxUndeliveredRequests: defaultMaxRequests,
		MaxUndeliveredMetrics:  defaultMaxMetrics,
		now:                    time.Now,
	}
}

// SampleConfig returns the embedded sample configuration.
func (*Listener) SampleConfig() string { return sampleConfig }

// Init checks the configuration; it opens nothing.
func (l *Listener) Init() error {
	if l.now == nil {
		l.now = time.Now
	}
	if l.ServiceAddress == "" {
		l.ServiceAddress = defaultAddress
	}
	if l.SourceTag == "" {
		return errors.New("source_tag must not be empty")
	}
	switch {
	case l.MaxBodySize == 0:
		l.MaxBodySize = config.Size(defaultMaxBodySize)
	case l.MaxBodySize > 1<<40:
		return fmt.Errorf("max_body_size %d is out of range", l.MaxBodySize)
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = config.Duration(defaultReadTimeout)
	}
	if l.DeliveryTimeout <= 0 {
		return errors.New("delivery_timeout must be positive: a request is answered only after its metrics were delivered")
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = l.DeliveryTimeout + config.Duration(writeTimeoutMargin)
	}
	if l.WriteTimeout <= l.DeliveryTimeout {
		return fmt.Errorf("write_timeout (%s) must exceed delivery_timeout (%s): the answer is written after the delivery wait",
			time.Duration(l.WriteTimeout), time.Duration(l.DeliveryTimeout))
	}
	if l.MaxUndeliveredRequests <= 0 {
		return errors.New("max_undelivered_requests must be positive")
	}
	if l.MaxUndeliveredMetrics < 0 {
		return errors.New("max_undelivered_metrics must not be negative")
	}
	if l.MaxAge < 0 || l.MaxFuture < 0 {
		return errors.New("max_age and max_future must not be negative")
	}
	creds, err := newCredentials(l.BasicUsername, l.BasicPassword, l.Tokens)
	if err != nil {
		return err
	}
	l.creds = creds
	tlsConf, err := l.ServerConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("tls settings: %w", err)
	}
	// common_tls loads a certificate only when both files are given, so
	// without this every handshake would fail at run time.
	if tlsConf != nil && len(tlsConf.Certificates) == 0 {
		return errors.New("tls settings: tls_cert and tls_key must both be set (tls_allowed_cacerts needs them too)")
	}
	l.tlsConf = tlsConf
	return nil
}

// Start opens the socket and serves until Stop.
func (l *Listener) Start(acc telegraf.Accumulator) error {
	if l.creds == nil {
		if err := l.Init(); err != nil { // Start without Init (tests, shims)
			return err
		}
	}
	ln, err := net.Listen("tcp", l.ServiceAddress)
	if err != nil {
		return fmt.Errorf("listening on service_address %q: %w", l.ServiceAddress, err)
	}
	if l.tlsConf != nil {
		ln = tls.NewListener(ln, l.tlsConf)
	}
	l.listener = ln
	l.stats = newStats(ln.Addr().String())
	l.tracker = newTracker(acc.WithTracking(l.MaxUndeliveredRequests), l.MaxUndeliveredRequests, l.MaxUndeliveredMetrics)
	l.server = &http.Server{
		Handler:           l,
		ReadTimeout:       time.Duration(l.ReadTimeout),
		ReadHeaderTimeout: time.Duration(l.ReadTimeout),
		WriteTimeout:      time.Duration(l.WriteTimeout),
		TLSConfig:         l.tlsConf,
	}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		l.tracker.run()
	}()
	go func() {
		defer l.wg.Done()
		if err := l.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			acc.AddError(fmt.Errorf("librato_listener on %s stopped serving: %w", ln.Addr(), err))
		}
	}()
	if l.Log != nil {
		l.Log.Infof("Listening on %s", ln.Addr())
	}
	return nil
}

// Addr is the address the listener is bound to (after Start), useful with
// service_address ":0".
func (l *Listener) Addr() net.Addr {
	if l.listener == nil {
		return nil
	}
	return l.listener.Addr()
}

// Gather does nothing: metrics arrive with requests.
func (*Listener) Gather(telegraf.Accumulator) error { return nil }

// Stop answers requests still waiting for delivery with 503 (the agent
// flushes outputs only after inputs stopped, so waiting would deadlock),
// then shuts the server down.
func (l *Listener) Stop() {
	if l.server == nil {
		return
	}
	l.tracker.stop()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := l.server.Shutdown(ctx); err != nil {
		_ = l.server.Close()
	}
	l.wg.Wait()
}
