// Command librato-execd runs the Librato output plugin as an external plugin
// of stock Telegraf's [[outputs.execd]] (data_format = "influx").
//
// Unlike a plugins/common/shim based binary it does not lose data: it loads
// its configuration with Telegraf's own loader (unknown keys are rejected,
// ${VAR} substitution and deprecation notices work as in Telegraf), keeps the
// metrics in Telegraf's own output buffer until Librato accepted them,
// retries failed writes on every flush, reads lines of any length, stops
// reading instead of overflowing the buffer, and flushes on SIGTERM/SIGINT.
//
// With a spool directory (-spool_dir, or systemd's STATE_DIRECTORY) every
// metric read is fsynced to an on-disk spool before it is sent and stays
// there until the plugin's Write returned nil for it, so a restart or a
// crash during an outage loses nothing: the next start sends it first.
// Without one, what is undelivered at exit is lost (a warning says so).
//
// Usage:
//
//	librato-execd -config librato-plugin.conf [-flush_interval 2s]
//	              [-batch_size N] [-shutdown_timeout 10s] [-debug]
//	              [-spool_dir DIR|off] [-spool_max_size 256MiB]
//	librato-execd -check -config librato-plugin.conf
//	librato-execd -version
//
// Exit codes: 0 all metrics read were delivered (or dropped for a logged,
// permanent reason) or are kept in the spool; 1 configuration or startup
// error; 2 bad command line; 3 metrics were still undelivered when
// shutdown_timeout ran out (no spool), or the spool could not be saved.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if wantsVersion(os.Args[1:]) {
		printVersion(os.Stdout)
		return
	}
	if wantsCheck(os.Args[1:]) {
		os.Exit(runCheck(os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	// Signals stay caught until exit: a second SIGTERM (execd sends one after
	// a group-wide one) must not kill the final flush.
	code := run(ctx, os.Args[1:], os.Stdin, os.Stderr)
	stop()
	os.Exit(code)
}
