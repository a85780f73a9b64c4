//go:build integration

package integration

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// readmeExecd holds the README's execd route: the librato.conf section and
// the [[outputs.execd]] section, as a user copies them.
type readmeExecd struct {
	pluginConf, execdSection string
	restartDelay             time.Duration
}

// The paths the README installs to; the test puts its own in their place.
const (
	readmeBinary     = "/usr/local/bin/librato-execd"
	readmePluginConf = "/etc/telegraf/librato.conf"
)

var tomlFence = regexp.MustCompile("(?s)```toml\n(.*?)```")

func readReadmeExecd(t *testing.T) readmeExecd {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	require.NoError(t, err)
	_, route, ok := strings.Cut(string(b), "### External plugin for a stock Telegraf")
	require.True(t, ok, "README has no execd section")
	route, _, _ = strings.Cut(route, "\n### ")

	var r readmeExecd
	for _, m := range tomlFence.FindAllStringSubmatch(route, -1) {
		switch {
		case strings.Contains(m[1], "[[outputs.execd]]"):
			r.execdSection = m[1]
		case strings.Contains(m[1], "[[outputs.librato]]") && r.pluginConf == "":
			r.pluginConf = m[1]
		}
	}
	require.NotEmpty(t, r.pluginConf, "README's librato.conf")
	require.NotEmpty(t, r.execdSection, "README's [[outputs.execd]]")
	require.Contains(t, r.execdSection, readmeBinary)
	require.Contains(t, r.execdSection, readmePluginConf)
	// The token lives in Telegraf's environment only.
	require.Contains(t, r.pluginConf, `api_token = "${LIBRATO_TOKEN}"`)
	require.NotContains(t, r.execdSection, "LIBRATO_TOKEN")
	m := regexp.MustCompile(`(?m)^\s*restart_delay\s*=\s*"([^"]+)"`).FindStringSubmatch(r.execdSection)
	require.NotNil(t, m, "README's [[outputs.execd]] must set restart_delay")
	r.restartDelay, err = time.ParseDuration(m[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.restartDelay, 5*time.Second)
	return r
}

// goInstallExecd installs librato-execd the way the README says, from this
// clone, static (the container recipe's CGO_ENABLED=0).
func goInstallExecd(t *testing.T) string {
	t.Helper()
	gobin := t.TempDir()
	cmd := exec.Command("go", "install", "./cmd/librato-execd")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go install ./cmd/librato-execd:\n%s", out)
	t.Logf("go install ./cmd/librato-execd: %s", time.Since(start).Round(time.Second))
	bin := filepath.Join(gobin, "librato-execd")
	require.FileExists(t, bin)

	// Static: no ELF interpreter, so it runs in any container image.
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "librato-execd is dynamically linked")
	}
	return bin
}

// execdSetup writes the README's two files with the test's paths, the
// test user and the fake's URL, plus a telegraf.conf reading the fixture.
func execdSetup(t *testing.T, r readmeExecd, plugin, url string, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	pluginConf := regexp.MustCompile(`(?m)^(\s*api_user\s*=\s*).*$`).ReplaceAllString(r.pluginConf, `${1}"`+apiUser+`"`)
	pluginConf += "  api_url = \"" + url + "\"\n"
	if edit != nil {
		pluginConf = edit(pluginConf)
	}
	pluginPath := filepath.Join(dir, "librato.conf")
	require.NoError(t, os.WriteFile(pluginPath, []byte(pluginConf), 0o600))

	section := strings.ReplaceAll(r.execdSection, readmeBinary, plugin)
	section = strings.ReplaceAll(section, readmePluginConf, pluginPath)
	// A spool directory from the README is a system path: use one here.
	section = regexp.MustCompile(`"-spool_dir",\s*"[^"]*"`).ReplaceAllString(section,
		`"-spool_dir", "`+filepath.Join(dir, "spool")+`"`)
	conf := "[agent]\n  omit_hostname = true\n  interval = \"1s\"\n  flush_interval = \"1s\"\n\n" +
		"[[inputs.file]]\n  files = [\"" + fixture(t, "metrics.lp") + "\"]\n  data_format = \"influx\"\n\n" + section
	confPath := filepath.Join(dir, "telegraf.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	return confPath
}

// TestExecdAsReadme follows the README's execd route: go install, its
// librato.conf and [[outputs.execd]] unchanged but for paths, the token only
// in Telegraf's environment.
func TestExecdAsReadme(t *testing.T) {
	r := readReadmeExecd(t)
	telegraf, plugin := telegrafExecd(t), goInstallExecd(t)

	t.Run("delivers every metric", func(t *testing.T) {
		s := newFake(t, fakelibrato.Options{})
		conf := execdSetup(t, r, plugin, s.LegacyURL(), nil)
		res := runOnce(t, []string{"LIBRATO_TOKEN=" + apiToken}, telegraf, "--config", conf, "--once")
		require.Equal(t, 0, res.code, res)
		requireExactGauges(t, s, fixtureGauges, res)
		require.NotContains(t, res.stderr, apiToken)
	})

	// One typo in librato.conf makes librato-execd exit at startup; Telegraf
	// restarts it only every restart_delay, and the log says why.
	t.Run("typo in librato.conf restarts slowly", func(t *testing.T) {
		s := newFake(t, fakelibrato.Options{})
		conf := execdSetup(t, r, plugin, s.LegacyURL(), func(c string) string {
			return strings.Replace(c, "api_token", "api_tokn", 1)
		})
		cmd := exec.Command(telegraf, "--config", conf)
		cmd.Env = append(os.Environ(), "LIBRATO_TOKEN="+apiToken)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var log syncBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { killGroup(t, cmd.Process.Pid) })

		eventually(t, time.Minute, "librato-execd to start", func() bool {
			return strings.Contains(log.String(), "Starting process")
		}, &log)
		const watch = 6 * time.Second
		time.Sleep(watch)
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-exited:
		case <-time.After(time.Minute):
			t.Fatalf("telegraf did not stop\n%s", &log)
		}

		starts := strings.Count(log.String(), "Starting process")
		require.LessOrEqual(t, starts, 2+int(watch/r.restartDelay), "restart storm:\n%s", &log)
		require.Contains(t, log.String(), "api_tokn", "the log must name the typo")
		require.Contains(t, log.String(), "Restarting in "+r.restartDelay.String())
		require.Empty(t, s.Requests())
		t.Logf("%d starts of librato-execd in %s with restart_delay %s", starts, watch, r.restartDelay)
	})
}
