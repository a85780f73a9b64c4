package checkcli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWanted(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-config", "x.conf"}, false},
		{[]string{"-check", "-config", "x.conf"}, true},
		{[]string{"-config", "x.conf", "--check=true"}, true},
		{[]string{"--", "-check"}, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, Wanted(tc.args), "%q", tc.args)
	}
}

func TestConfigPath(t *testing.T) {
	var stderr bytes.Buffer
	path, _, ok := ConfigPath("librato-execd", []string{"-check", "-config", "a.conf"}, &stderr)
	require.True(t, ok)
	require.Equal(t, "a.conf", path)

	_, code, ok := ConfigPath("librato-execd", []string{"-check"}, &stderr)
	require.False(t, ok)
	require.Equal(t, ExitLoad, code)
	require.Contains(t, stderr.String(), "usage: librato-execd -check -config FILE")
}
