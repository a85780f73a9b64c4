package main

// librato-tryout -check -config FILE: before deploying, asks Librato whether
// the [[outputs.librato]] section of FILE works (credentials, URL, record
// access, TLS, proxy) without storing anything, and prints one line: OK with
// the account's API mode, or FAILED naming the setting to fix. The secrets
// are never printed. With -check, -config names a file, not extra TOML lines.
//
// Exit codes of -check: 0 OK; 1 a setting is wrong (or Librato could not be
// asked); 2 the config cannot be loaded, or a bad command line.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/influxdata/telegraf"

	"github.com/influxdata/telegraf/models"

	"github.com/seed-d22a899f/librato"
)

const (
	exitOK          = 0
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
	fs := flag.NewFlagSet("librato-tryout -check", flag.ContinueOnError)
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
		fmt.Fprintln(stderr, "librato-tryout: usage: librato-tryout -check -config FILE")
		return exitCheckLoad
	}
	runMu.Lock()
	defer runMu.Unlock()
	logs, err := captureLogs(stderr, telegraf.Info)
	if err != nil {
		fmt.Fprintf(stderr, "librato-tryout: %v\n", err)
		return exitCheckLoad
	}
	defer logs.stop()
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "librato-tryout: reading config: %v\n", err)
		return exitCheckLoad
	}
	ro, err := loadOutput(string(data))
	if err != nil {
		fmt.Fprintf(stderr, "librato-tryout: %s: %v\n", *path, err)
		return exitCheckLoad
	}
	return checkOutput(context.Background(), ro, stdout)
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
