// Package checkcli is the -check mode shared by librato-execd and
// librato-tryout: before deploying, ask Librato whether the
// [[outputs.librato]] section of a file works (credentials, URL, record
// access, TLS, proxy) without storing anything, and print one line: OK with
// the account's API mode, or FAILED naming the setting to fix. The secrets
// are never printed.
//
// Exit codes: 0 OK; 1 a setting is wrong (or Librato could not be asked);
// 2 the config cannot be loaded, or a bad command line.
package checkcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/influxdata/telegraf/models"

	"github.com/seed-d22a899f/librato"
)

// Exit codes of -check.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitLoad   = 2
)

// Wanted reports whether the command line asks for -check, so main can run
// it instead of the plugin.
func Wanted(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-check", "--check", "-check=true", "--check=true":
			return true
		}
	}
	return false
}

// ConfigPath parses "-check -config FILE" for the command name. When ok is
// false, code is the exit code to return.
func ConfigPath(name string, args []string, stderr io.Writer) (path string, code int, ok bool) {
	fs := flag.NewFlagSet(name+" -check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("check", false, "check the credentials and settings of the config against Librato, print one line and exit")
	p := fs.String("config", "", "TOML `file` with one [[outputs.librato]] block (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", ExitOK, false
		}
		return "", ExitLoad, false
	}
	if *p == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: usage: %s -check -config FILE\n", name, name)
		return "", ExitLoad, false
	}
	return *p, 0, true
}

// Run initialises the loaded output, checks it and prints the line; it
// returns the exit code.
func Run(ctx context.Context, ro *models.RunningOutput, stdout io.Writer) int {
	if err := ro.Init(); err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return ExitFailed
	}
	l, ok := ro.Output.(*librato.Librato)
	if !ok {
		fmt.Fprintf(stdout, "FAILED: the output is %T, not this Librato plugin\n", ro.Output)
		return ExitFailed
	}
	defer l.Close()
	line, err := l.Check(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintln(stdout, line)
	return ExitOK
}
