package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWantsVersion(t *testing.T) {
	require.True(t, wantsVersion([]string{"-version"}))
	require.True(t, wantsVersion([]string{"-config", "x.conf", "--version"}))
	require.False(t, wantsVersion([]string{"-config", "x.conf"}))
	require.False(t, wantsVersion([]string{"--", "-version"}))
}

// A test binary records no module version: "devel", as go run prints.
func TestPrintVersion(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b)
	require.Regexp(t, `^librato-execd devel \(go1\.\d+`, b.String())
}

// -help lists -version, and the flag parser accepts it.
func TestVersionFlagListed(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &stderr)
	require.Error(t, err)
	require.Contains(t, stderr.String(), "-version")
}
