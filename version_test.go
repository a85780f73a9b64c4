package librato

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestModuleVersion(t *testing.T) {
	dep := func(version string, replace *debug.Module) *debug.Module {
		return &debug.Module{Path: modulePath, Version: version, Replace: replace}
	}
	other := &debug.Module{Path: "github.com/stretchr/testify", Version: "v1.11.1"}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "devel"},
		{
			"librato-execd from go install @version",
			&debug.BuildInfo{Main: debug.Module{Path: modulePath, Version: "v0.2.0"}, Deps: []*debug.Module{other}},
			"v0.2.0",
		},
		{
			"librato-execd from a clone",
			&debug.BuildInfo{Main: debug.Module{Path: modulePath, Version: "(devel)"}},
			"devel",
		},
		{
			"Telegraf with the module from the proxy",
			&debug.BuildInfo{Main: debug.Module{Path: "github.com/influxdata/telegraf"}, Deps: []*debug.Module{other, dep("v0.2.0", nil)}},
			"v0.2.0",
		},
		{
			"Telegraf from build-telegraf.sh: a directory replacement at the checkout's version",
			&debug.BuildInfo{Main: debug.Module{Path: "github.com/influxdata/telegraf"}, Deps: []*debug.Module{
				dep("v0.1.1-0.20261122060000-0123456789ab", &debug.Module{Path: "./_librato", Version: "(devel)"}),
			}},
			"v0.1.1-0.20261122060000-0123456789ab",
		},
		{
			"Telegraf with a module replacement: its version",
			&debug.BuildInfo{Main: debug.Module{Path: "github.com/influxdata/telegraf"}, Deps: []*debug.Module{
				dep("v0.1.0", &debug.Module{Path: "example.com/fork/librato", Version: "v0.1.0-fork.1"}),
			}},
			"v0.1.0-fork.1",
		},
		{
			"some other binary",
			&debug.BuildInfo{Main: debug.Module{Path: "example.com/x", Version: "v9.9.9"}, Deps: []*debug.Module{other}},
			"devel",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, moduleVersion(tt.info))
		})
	}
}
