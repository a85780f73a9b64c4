//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// fileConf is a --once config: inputs.file reads the fixture, our
// outputs.librato writes to the fake. Output holds extra plugin lines.
const fileConf = `[agent]
  omit_hostname = true
  flush_interval = "1s"

[[inputs.file]]
  files = [{{printf "%q" .File}}]
  data_format = "influx"

[[outputs.librato]]
  api_user = {{printf "%q" .User}}
{{- if .Token}}
  api_token = {{printf "%q" .Token}}
{{- end}}
  api_url = {{printf "%q" .URL}}
{{.Output}}
`

type fileConfData struct {
	File, User, Token, URL, Output string
}

func writeFileConf(t *testing.T, url, output string) string {
	return writeFile(t, t.TempDir(), "telegraf.conf", fileConf, fileConfData{
		File: fixture(t, "metrics.lp"), User: apiUser, Token: apiToken, URL: url, Output: output,
	})
}

func TestCustomBuildDeliversFixtureOnce(t *testing.T) {
	bin := telegrafLibrato(t)
	s := newFake(t, fakelibrato.Options{})
	// concurrent_writes and measurements_per_request exist only in this
	// module's plugin: the built-in one would reject them as unused.
	conf := writeFileConf(t, s.LegacyURL(), "  concurrent_writes = 4\n  measurements_per_request = 3")

	res := runOnce(t, nil, bin, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)
	requireExactGauges(t, s, fixtureGauges, res)
	// 8 gauges at 3 per request.
	require.Len(t, s.Requests(), 3, res)
	require.Contains(t, res.stderr, "1.39.3-librato")
}

func TestCustomBuildListsOurPlugin(t *testing.T) {
	bin := telegrafLibrato(t)
	res := runOnce(t, nil, bin, "plugins", "outputs")
	require.Equal(t, 0, res.code, res)
	// The default build carries outputs.file too, for the listener's route.
	require.Equal(t, []string{"outputs.file", "outputs.librato"}, strings.Fields(res.stdout))

	// The sample config is ours, not the built-in one.
	res = runOnce(t, nil, bin, "config", "create", "--section-filter", "outputs", "--output-filter", "librato")
	require.Equal(t, 0, res.code, res)
	require.Contains(t, res.stdout, "[[outputs.librato]]")
	require.Contains(t, res.stdout, "source_override_tag")
	require.Contains(t, res.stdout, "concurrent_writes")
}

func TestCustomBuildUnknownKeyRejected(t *testing.T) {
	bin := telegrafLibrato(t)
	s := newFake(t, fakelibrato.Options{})
	conf := writeFileConf(t, s.LegacyURL(), "  concurent_writes = 4")
	res := runOnce(t, nil, bin, "--config", conf, "--once")
	require.NotEqual(t, 0, res.code, res)
	require.Contains(t, res.stderr, "concurent_writes", res)
	require.Empty(t, s.Requests())
}

func TestCustomBuildDeprecatedSourceTag(t *testing.T) {
	bin := telegrafLibrato(t)
	s := newFake(t, fakelibrato.Options{})
	// No template: the deprecated source_tag becomes the template.
	conf := writeFileConf(t, s.LegacyURL(), `  source_tag = "host"`)
	res := runOnce(t, nil, bin, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)
	require.Contains(t, res.stderr, "source_tag")
	require.Contains(t, res.stderr, "deprecated")
	requireExactGauges(t, s, fixtureGauges, res)
}

func TestCustomBuildMissingTokenFailsStartup(t *testing.T) {
	bin := telegrafLibrato(t)
	s := newFake(t, fakelibrato.Options{})
	conf := writeFile(t, t.TempDir(), "telegraf.conf", fileConf, fileConfData{
		File: fixture(t, "metrics.lp"), User: apiUser, URL: s.LegacyURL(),
	})
	res := runOnce(t, nil, bin, "--config", conf, "--once")
	require.NotEqual(t, 0, res.code, res)
	require.Contains(t, res.stderr, "api_token", res)
	require.Empty(t, s.Requests())
}

type measurement struct {
	Name  string
	Tags  string
	Value float64
	Time  int64
}

func (m measurement) String() string {
	return fmt.Sprintf("%s %s value=%g time=%d", m.Name, m.Tags, m.Value, m.Time)
}

func TestCustomBuildTaggedAPI(t *testing.T) {
	bin := telegrafLibrato(t)
	s := newFake(t, fakelibrato.Options{})
	conf := writeFileConf(t, s.TaggedURL(), "  api = \"tagged\"\n  [outputs.librato.extra_tags]\n    env = \"test\"")
	res := runOnce(t, nil, bin, "--config", conf, "--once")
	require.Equal(t, 0, res.code, res)

	ms := s.Measurements()
	got := make([]measurement, 0, len(ms))
	for _, m := range ms {
		keys := make([]string, 0, len(m.Tags))
		for k, v := range m.Tags {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		got = append(got, measurement{m.Name, strings.Join(keys, ","), m.Value, m.Time})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].String() < got[j].String() })
	// Every metric has a tag here (extra_tags), so nohost is sent too.
	want := []measurement{
		{"cpu.usage_idle", "cpu=cpu-total,env=test,host=web01", 98.5, 1700000000},
		{"cpu.usage_user", "cpu=cpu-total,env=test,host=web01", 1.25, 1700000000},
		{"disk.free", "env=test,host=db-1,path=/", 100, 1700000010},
		{"mem.available", "env=test,host=web01", 8123456789, 1700000000},
		{"mem.used_percent", "env=test,host=web01", 42.5, 1700000000},
		{"net.bytes_recv", "env=test,host=web01", 12345, 1700000020},
		{"net.up", "env=test,host=web01", 1, 1700000020},
		{"nohost", "env=test", 1, 1700000050},
		{"swap", "env=test,host=web01", 0.5, 1700000030},
	}
	sort.Slice(want, func(i, j int) bool { return want[i].String() < want[j].String() })
	require.Equal(t, joinLines(want), joinLines(got), res)
	require.Empty(t, s.Gauges())
}

func TestCustomBuildConfigMigrate(t *testing.T) {
	bin := telegrafLibrato(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "old.conf")
	require.NoError(t, os.WriteFile(conf, []byte(`[[outputs.librato]]
  api_user = "u@example.com"
  api_token = "token"
  source_tag = "host"
`), 0o600))
	res := runOnce(t, nil, bin, "config", "migrate", "--config", conf)
	require.Equal(t, 0, res.code, res)
	out, err := os.ReadFile(conf + ".migrated")
	require.NoError(t, err, res)
	require.Contains(t, string(out), "[[outputs.librato]]")
	require.Regexp(t, `(?m)^\s*template\s*=\s*"host"`, string(out))
	require.NotContains(t, string(out), "source_tag")
}
