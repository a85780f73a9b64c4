// Package examples holds configurations users copy; its test loads them
// with Telegraf's own config loader, so they stay valid.
package examples

import (
	"os"
	"slices"
	"testing"

	"github.com/influxdata/telegraf/config"
	_ "github.com/influxdata/telegraf/plugins/inputs/cpu"    // register plugin
	_ "github.com/influxdata/telegraf/plugins/inputs/disk"   // register plugin
	_ "github.com/influxdata/telegraf/plugins/inputs/mem"    // register plugin
	_ "github.com/influxdata/telegraf/plugins/inputs/net"    // register plugin
	_ "github.com/influxdata/telegraf/plugins/inputs/system" // register plugin
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato"
)

func TestTelegrafConf(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // of the output's Init
		wantURL string
	}{
		{
			name:    "credentials in the environment",
			env:     map[string]string{"LIBRATO_USER": "ops@example.com", "LIBRATO_TOKEN": "t0ken"},
			wantURL: "https://metrics-api.librato.com/v1/metrics",
		},
		{
			name: "local API",
			env: map[string]string{
				"LIBRATO_USER": "tryout@example.com", "LIBRATO_TOKEN": "tryout-token",
				"LIBRATO_API_URL": "http://127.0.0.1:8085/v1/metrics",
			},
			wantURL: "http://127.0.0.1:8085/v1/metrics",
		},
		{
			name:    "token not set",
			env:     map[string]string{"LIBRATO_USER": "ops@example.com"},
			wantErr: "LIBRATO_TOKEN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"LIBRATO_USER", "LIBRATO_TOKEN", "LIBRATO_API_URL"} {
				v, ok := tt.env[k]
				t.Setenv(k, v) // also restores the variable when the test ends
				if !ok {
					require.NoError(t, os.Unsetenv(k))
				}
			}
			c := config.NewConfig()
			require.NoError(t, c.LoadConfig("telegraf.conf"))

			var inputs []string
			for _, in := range c.Inputs {
				inputs = append(inputs, in.Config.Name)
				require.NoError(t, in.Init(), in.Config.Name)
			}
			slices.Sort(inputs)
			require.Equal(t, []string{"cpu", "disk", "mem", "net", "system"}, inputs)
			require.Len(t, c.Outputs, 1)
			require.Equal(t, "librato", c.Outputs[0].Config.Name)

			err := c.Outputs[0].Init()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			out, ok := c.Outputs[0].Output.(*librato.Librato)
			require.True(t, ok)
			require.Equal(t, tt.wantURL, out.APIURL)
		})
	}
}
