// Command librato-listener-execd runs inputs.librato_listener under a stock
// Telegraf's [[inputs.execd]]: it answers Librato clients and writes what
// they send to stdout as line protocol.
//
//	[[inputs.execd]]
//	  command = ["/usr/local/bin/librato-listener-execd", "-config", "/etc/telegraf/librato-listener.conf"]
//	  signal = "none"
//	  data_format = "influx"
//
// The config file holds one [[inputs.librato_listener]] table (none: the
// defaults). This route is weaker than a custom-built Telegraf: a request is
// acknowledged once its metrics are written to stdout, not once Telegraf's
// outputs wrote them, and counters arrive untyped.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/influxdata/telegraf/logger"
	"github.com/influxdata/telegraf/plugins/common/shim"

	_ "github.com/seed-d22a899f/librato/listener" // register inputs.librato_listener
)

func main() {
	configFile := flag.String("config", "", "file with one [[inputs.librato_listener]] table (default: the plugin's defaults)")
	debug := flag.Bool("debug", false, "log debug messages to stderr")
	flag.Parse()
	os.Exit(run(*configFile, *debug))
}

func run(configFile string, debug bool) int {
	// Without a log sink the shim keeps every log line in memory.
	if err := logger.SetupLogging(&logger.Config{Debug: debug, InstanceName: "librato-listener-execd"}); err != nil {
		fmt.Fprintf(os.Stderr, "librato-listener-execd: setting up logging: %v\n", err)
		return 1
	}
	s := shim.New()
	if err := s.LoadConfig(&configFile); err != nil {
		fmt.Fprintf(os.Stderr, "librato-listener-execd: loading %q: %v\n", configFile, err)
		return 1
	}
	// A service input: metrics arrive with requests, nothing to poll. The
	// shim stops when stdin closes (Telegraf keeps it open) or on SIGTERM.
	if err := s.Run(shim.PollIntervalDisabled); err != nil {
		fmt.Fprintf(os.Stderr, "librato-listener-execd: %v\n", err)
		return 1
	}
	return 0
}
