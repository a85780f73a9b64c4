package main

// librato-tryout -check -config FILE: see internal/checkcli. -config names
// a file here as in the try-out itself.

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/influxdata/telegraf"

	"github.com/seed-d22a899f/librato/internal/checkcli"
)

const (
	exitOK          = checkcli.ExitOK
	exitCheckFailed = checkcli.ExitFailed
	exitCheckLoad   = checkcli.ExitLoad
)

func wantsCheck(args []string) bool { return checkcli.Wanted(args) }

// runCheck is -check without the process: it returns the exit code.
func runCheck(args []string, stdout, stderr io.Writer) int {
	path, code, ok := checkcli.ConfigPath("librato-tryout", args, stderr)
	if !ok {
		return code
	}
	runMu.Lock()
	defer runMu.Unlock()
	logs, err := captureLogs(stderr, telegraf.Info)
	if err != nil {
		fmt.Fprintf(stderr, "librato-tryout: %v\n", err)
		return exitCheckLoad
	}
	defer logs.stop()
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "librato-tryout: reading config: %v\n", err)
		return exitCheckLoad
	}
	ro, err := loadOutput(string(data))
	if err != nil {
		fmt.Fprintf(stderr, "librato-tryout: %s: %v\n", path, err)
		return exitCheckLoad
	}
	return checkcli.Run(context.Background(), ro, stdout)
}
