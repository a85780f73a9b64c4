package main

// librato-execd -check -config FILE: before deploying, asks Librato whether
// the [[outputs.librato]] section of FILE works (credentials, URL, record
// access, TLS, proxy) without storing anything, and prints one line: OK with
// the account's API mode, or FAILED naming the setting to fix. The secrets
// are never printed.
//
// Exit codes of -check: 0 OK; 1 a setting is wrong (or Librato could not be
// asked); 2 the config cannot be loaded, or a bad command line.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/influxdata/telegraf/models"

	"github.com/seed-d22a899f/librato"
)

const (
	exitCheckFailed = 1
	exitCheckLoad   = 2
)

// wantsCheck reports whether the command line asks for -check, so main can
// run it instead of the plugin.
func wantsCheck(args []string) bool {
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

// runCheck is -check without the process: it returns the exit code.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("librato-execd -check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("check", false, "check the credentials and settings of the config against Librato, print one line and exit")
	path := fs.String("config", "", "TOML `file` with one [[outputs.librato]] block (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitCheckLoad
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "librato-execd: usage: librato-execd -check -config FILE")
		return exitCheckLoad
	}
	if err := setupLogging(stderr, false, false); err != nil {
		fmt.Fprintf(stderr, "librato-execd: setting up logging: %v\n", err)
		return exitCheckLoad
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "librato-execd: %v\n", err)
		return exitCheckLoad
	}
	return checkOutput(context.Background(), cfg.output, stdout)
}

// checkOutput initialises the loaded output and prints the check's line.
func checkOutput(ctx context.Context, ro *models.RunningOutput, stdout io.Writer) int {
	if err := ro.Init(); err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return exitCheckFailed
	}
	l, ok := ro.Output.(*librato.Librato)
	if !ok {
		fmt.Fprintf(stdout, "FAILED: the output is %T, not this Librato plugin\n", ro.Output)
		return exitCheckFailed
	}
	defer l.Close()
	line, err := l.Check(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return exitCheckFailed
	}
	fmt.Fprintln(stdout, line)
	return exitOK
}
