package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/logger"
	"github.com/influxdata/telegraf/models"

	_ "github.com/seed-d22a899f/librato" // registers outputs.librato
)

const (
	exitOK       = 0
	exitConfig   = 1
	exitUsage    = 2
	exitLostData = 3

	defaultFlushInterval   = 2 * time.Second
	defaultShutdownTimeout = 10 * time.Second
	defaultSpoolMaxSize    = 256 << 20

	// spoolOff as -spool_dir turns the spool off even under systemd.
	spoolOff = "off"
	// stateDirEnv is set by systemd for a unit with StateDirectory=.
	stateDirEnv = "STATE_DIRECTORY"
)

// options are the command-line flags.
type options struct {
	configPath      string
	debug           bool
	flushInterval   time.Duration
	flushSet        bool
	batchSize       int
	shutdownTimeout time.Duration
	spoolDir        string
	spoolDirSet     bool
	spoolMaxSize    sizeFlag
}

// sizeFlag is a byte size flag taking Telegraf's forms ("256MiB", "1GB",
// bytes).
type sizeFlag int64

func (s *sizeFlag) String() string {
	if *s > 0 && *s%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", int64(*s)>>20)
	}
	return strconv.FormatInt(int64(*s), 10)
}

func (s *sizeFlag) Set(v string) error {
	var size config.Size
	if err := size.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("not a size: %w", err)
	}
	*s = sizeFlag(size)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{spoolMaxSize: defaultSpoolMaxSize}
	fs := flag.NewFlagSet("librato-execd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "TOML file with one [[outputs.librato]] block and an optional [agent] table (required)")
	fs.BoolVar(&o.debug, "debug", false, "log at debug level")
	fs.Bool("version", false, "print this plugin's version and exit")
	fs.Bool("check", false,
		"check the -config file's credentials and settings against Librato, print one line and exit (0 OK, 1 a setting is wrong, 2 unloadable)")
	fs.DurationVar(&o.flushInterval, "flush_interval", defaultFlushInterval,
		"how often buffered metrics are written; overrides flush_interval of the config")
	fs.IntVar(&o.batchSize, "batch_size", 0,
		"metrics per Write and the buffer size that triggers an early flush (default: metric_batch_size of the config, else 1000)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown_timeout", defaultShutdownTimeout,
		"how long the final flush keeps retrying after stdin closed or a signal arrived; with a spool, what is left waits there for the next start")
	fs.StringVar(&o.spoolDir, "spool_dir", "",
		"directory of the on-disk spool that keeps metrics until Librato accepted them, across restarts and crashes "+
			"(default: $STATE_DIRECTORY/librato-execd/<config file name> under systemd with StateDirectory=, "+
			"else no spool; \"off\": no spool)")
	fs.Var(&o.spoolMaxSize, "spool_max_size",
		"the spool's bound on disk, a `size` such as 256MiB or 1GB; when full, the oldest undelivered metrics are dropped with a warning")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "flush_interval":
			o.flushSet = true
		case "spool_dir":
			o.spoolDirSet = true
		}
	})
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.configPath == "":
		return o, errors.New("-config is required")
	case o.flushInterval <= 0:
		return o, errors.New("-flush_interval must be positive")
	case o.batchSize < 0:
		return o, errors.New("-batch_size must not be negative")
	case o.shutdownTimeout <= 0:
		return o, errors.New("-shutdown_timeout must be positive")
	case o.spoolDirSet && o.spoolDir == "":
		return o, fmt.Errorf("-spool_dir must name a directory or be %q", spoolOff)
	case o.spoolMaxSize < minSegmentSize:
		return o, fmt.Errorf("-spool_max_size must be at least %d bytes", minSegmentSize)
	}
	return o, nil
}

// run is main without the process: it returns the exit code. Logs go to
// stderr; ctx being cancelled is what SIGTERM/SIGINT do.
func run(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "librato-execd: %v\n", err)
			return exitUsage
		}
		return exitOK
	}
	if err := setupLogging(stderr, opts.debug, false); err != nil {
		fmt.Fprintf(stderr, "librato-execd: setting up logging: %v\n", err)
		return exitConfig
	}
	log := logger.New("", "librato-execd", "")

	cfg, err := loadConfig(opts.configPath)
	if err != nil {
		log.Errorf("%v", err)
		return exitConfig
	}
	if cfg.agent.Debug || cfg.agent.Quiet {
		if err := setupLogging(stderr, opts.debug || cfg.agent.Debug, cfg.agent.Quiet); err != nil {
			log.Errorf("setting up logging: %v", err)
			return exitConfig
		}
	}

	ro := cfg.output
	r := &runner{
		ro:              ro,
		log:             log,
		flushInterval:   cfg.flushInterval(opts),
		batchSize:       ro.MetricBatchSize,
		bufferLimit:     ro.MetricBufferLimit,
		shutdownTimeout: opts.shutdownTimeout,
	}
	if opts.batchSize > 0 {
		r.batchSize = opts.batchSize
	}
	if r.batchSize > r.bufferLimit {
		log.Warnf("batch size %d is larger than metric_buffer_limit %d: using %d", r.batchSize, r.bufferLimit, r.bufferLimit)
		r.batchSize = r.bufferLimit
	}
	ro.MetricBatchSize = r.batchSize

	if err := ro.Init(); err != nil {
		log.Errorf("initializing %s: %v", ro.LogName(), err)
		return exitConfig
	}
	if err := ro.Connect(); err != nil {
		log.Errorf("connecting %s: %v", ro.LogName(), err)
		ro.Close()
		return exitConfig
	}
	log.Debugf("Started %s: flush_interval=%s batch_size=%d metric_buffer_limit=%d shutdown_timeout=%s",
		ro.LogName(), r.flushInterval, r.batchSize, r.bufferLimit, r.shutdownTimeout)

	dir := spoolDirOf(opts, os.Getenv(stateDirEnv))
	if dir == "" {
		log.Warnf("No spool (-spool_dir): metrics not yet delivered are lost when librato-execd stops or restarts " +
			"while Librato cannot be reached (Telegraf's outputs.execd does not send them again)")
		return r.run(ctx, stdin)
	}
	sp, st, err := openSpool(dir, spoolOptions{maxSize: int64(opts.spoolMaxSize)}, log)
	if err != nil {
		log.Errorf("%v", err)
		ro.Close()
		return exitConfig
	}
	if st.unsettled > 0 {
		log.Infof("Spool %s: %d metric(s) from before the restart are sent first", dir, st.unsettled)
	}
	log.Debugf("Spool %s: %d bytes, at most %s", dir, st.bytes, &opts.spoolMaxSize)
	return newSpoolRunner(r, sp).run(ctx, stdin)
}

// spoolDirOf is -spool_dir, else a directory per config file under
// systemd's STATE_DIRECTORY (its first entry: systemd joins several with
// ':'), else "" (no spool). Two outputs.execd blocks with different configs
// then never share a spool.
func spoolDirOf(o options, stateDir string) string {
	switch {
	case o.spoolDir == spoolOff:
		return ""
	case o.spoolDir != "":
		return o.spoolDir
	}
	stateDir, _, _ = strings.Cut(stateDir, ":")
	if stateDir == "" {
		return ""
	}
	name := strings.TrimSuffix(filepath.Base(o.configPath), filepath.Ext(o.configPath))
	return filepath.Join(stateDir, "librato-execd", name)
}

// setupLogging sends Telegraf's logs (the plugin's, the config loader's and
// ours) to stderr. Without a sink Telegraf's logger would keep every message
// in memory. A writer other than os.Stderr (tests) gets every level.
func setupLogging(stderr io.Writer, debug, quiet bool) error {
	if f, ok := stderr.(*os.File); ok && f == os.Stderr {
		return logger.SetupLogging(&logger.Config{Debug: debug, Quiet: quiet, InstanceName: "librato-execd"})
	}
	logger.RedirectLogging(stderr)
	return nil
}

// loaded is the result of loadConfig.
type loaded struct {
	agent  *config.AgentConfig
	output *models.RunningOutput
	// agentFlush is the [agent] flush_interval if the file set it.
	agentFlush time.Duration
}

// loadConfig reads the file with Telegraf's own loader, so unknown keys are
// rejected, ${VAR} is substituted and deprecated options are reported, and
// checks it holds exactly one outputs.librato and nothing else.
func loadConfig(path string) (*loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	config.ResetSecrets()
	c := config.NewConfig()
	// Zero the defaults we derive our own from, to see what the file set.
	c.Agent.FlushInterval = 0
	if err := c.LoadConfigData(data, path); err != nil {
		return nil, fmt.Errorf("loading config %s: %w", path, err)
	}
	if err := c.LinkSecrets(); err != nil {
		return nil, fmt.Errorf("loading config %s: %w", path, err)
	}
	if n := len(c.Inputs) + len(c.Processors) + len(c.AggProcessors) + len(c.Aggregators); n > 0 {
		return nil, fmt.Errorf("config %s: only [[outputs.librato]] and [agent] are supported here, found %d other plugin(s)", path, n)
	}
	if len(c.Outputs) != 1 {
		return nil, fmt.Errorf("config %s: want exactly one [[outputs.librato]], found %d outputs", path, len(c.Outputs))
	}
	ro := c.Outputs[0]
	if ro.Config.Name != "librato" {
		return nil, fmt.Errorf("config %s: the output must be outputs.librato, not outputs.%s", path, ro.Config.Name)
	}
	if !telegrafVersionStamped() {
		warnDeprecatedOptions("outputs.librato", ro.Output)
	}
	return &loaded{agent: c.Agent, output: ro, agentFlush: time.Duration(c.Agent.FlushInterval)}, nil
}

// flushInterval: the flag if given, else the output's flush_interval, else
// [agent] flush_interval, else 2s.
func (l *loaded) flushInterval(o options) time.Duration {
	switch {
	case o.flushSet:
		return o.flushInterval
	case l.output.Config.FlushInterval > 0:
		return l.output.Config.FlushInterval
	case l.agentFlush > 0:
		return l.agentFlush
	}
	return o.flushInterval
}
