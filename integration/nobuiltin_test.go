//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestBuildWithoutBuiltinLibrato: Telegraf removes plugins whose service is
// gone. A release without plugins/outputs/librato (simulated by deleting it
// from a copy of the pinned release's source) still builds with this
// plugin added, from a configuration custom_builder would refuse (it names
// outputs.librato), and the binary delivers. The build stamps this module's
// version into --version and prints no stray custom_builder log line.
func TestBuildWithoutBuiltinLibrato(t *testing.T) {
	root := repoRoot(t)
	download := exec.Command("go", "mod", "download", "-json", "github.com/influxdata/telegraf@"+pinnedVersion)
	download.Dir = root
	b, err := download.Output()
	require.NoError(t, err)
	var mod struct{ Dir string }
	require.NoError(t, json.Unmarshal(b, &mod))

	src := filepath.Join(t.TempDir(), "telegraf-src")
	require.NoError(t, os.CopyFS(src, os.DirFS(mod.Dir)))
	require.NoError(t, os.RemoveAll(filepath.Join(src, "plugins", "outputs", "librato")))
	require.NoError(t, os.Remove(filepath.Join(src, "plugins", "outputs", "all", "librato.go")))

	conf := fixture(t, "system.conf")
	bin := filepath.Join(t.TempDir(), "telegraf")
	build := exec.Command("bash", filepath.Join(root, "scripts", "build-telegraf.sh"), "--config", conf, "-o", bin)
	build.Dir = root
	build.Env = append(os.Environ(), "TELEGRAF_SRC="+src)
	b, err = build.CombinedOutput()
	out := string(b)
	require.NoError(t, err, "build-telegraf.sh failed:\n%s", out)
	require.Contains(t, out, "has no built-in outputs.librato: adding this plugin")
	require.Contains(t, out, "build tags: custom,inputs.cpu,inputs.disk,inputs.file,inputs.mem,migrations,outputs.librato,parsers.influx\n")
	require.Contains(t, out, "is this module's")
	require.NotContains(t, out, "Importing configuration file(s)")

	version, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	require.Regexp(t, `Telegraf 1\.39\.3-librato-v\d+\.\d+\.\d+-`, strings.TrimSpace(string(version)))

	s := newFake(t, fakelibrato.Options{})
	res := runOnce(t, systemVars(fixture(t, "metrics.lp"), s.LegacyURL(), apiUser, apiToken), bin, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)
	requireSystemGauges(t, s, res)
}
