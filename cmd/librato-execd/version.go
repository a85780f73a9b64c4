package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/seed-d22a899f/librato"
)

// wantsVersion reports whether the command line asks for -version, which
// main answers before anything else: it needs no config.
func wantsVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-version", "--version", "-version=true", "--version=true":
			return true
		}
	}
	return false
}

// printVersion names this module's version as Go recorded it: a tag for
// go install …@vX.Y.Z, a pseudo-version for go install ./cmd/librato-execd
// from a clone, "devel" for go run.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "librato-execd %s (%s)\n", librato.Version(), runtime.Version())
}
