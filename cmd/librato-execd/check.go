package main

// librato-execd -check -config FILE: see internal/checkcli.

import (
	"context"
	"fmt"
	"io"

	"github.com/seed-d22a899f/librato/internal/checkcli"
)

const (
	exitCheckFailed = checkcli.ExitFailed
	exitCheckLoad   = checkcli.ExitLoad
)

func wantsCheck(args []string) bool { return checkcli.Wanted(args) }

// runCheck is -check without the process: it returns the exit code.
func runCheck(args []string, stdout, stderr io.Writer) int {
	path, code, ok := checkcli.ConfigPath("librato-execd", args, stderr)
	if !ok {
		return code
	}
	if err := setupLogging(stderr, false, false); err != nil {
		fmt.Fprintf(stderr, "librato-execd: setting up logging: %v\n", err)
		return exitCheckLoad
	}
	cfg, err := loadConfig(path)
	if err != nil {
		fmt.Fprintf(stderr, "librato-execd: %v\n", err)
		return exitCheckLoad
	}
	return checkcli.Run(context.Background(), cfg.output, stdout)
}
