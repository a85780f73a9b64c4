package librato

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

func TestInitRejectsBadSettings(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*Librato)
		wantError string
	}{
		{"missing api_user", func(l *Librato) { l.APIUser = config.Secret{} }, "api_user is required"},
		{"missing api_token", func(l *Librato) { l.APIToken = config.Secret{} }, "api_token is required"},
		{"unknown api", func(l *Librato) { l.API = "v2" }, `invalid api "v2"`},
		{"not a URL", func(l *Librato) { l.APIURL = "://nope" }, "invalid api_url"},
		{"no host", func(l *Librato) { l.APIURL = "https:///v1/metrics" }, "invalid api_url"},
		{"credentials twice", func(l *Librato) { l.APIURL = "https://u:p@metrics-api.librato.com/v1/metrics" }, "use one of them"},
		{"source_tag contradicts template", func(l *Librato) { l.SourceTag, l.Template = "region", "host" }, "contradicts template"},
		{"zero batch", func(l *Librato) { l.MeasurementsPerRequest = 0 }, "measurements_per_request must be positive"},
		{"zero concurrency", func(l *Librato) { l.ConcurrentWrites = 0 }, "concurrent_writes must be positive"},
		{"zero timeout", func(l *Librato) { l.Timeout = 0 }, "timeout must be positive"},
		{"negative budget", func(l *Librato) { l.RetryBudget = -1 }, "retry_budget must not be negative"},
		{"bad encoding", func(l *Librato) { l.ContentEncoding = "br" }, "invalid content_encoding"},
		{"bad default_source", func(l *Librato) { l.DefaultSource = "has space" }, "invalid default_source"},
		{"reserved default_source", func(l *Librato) { l.DefaultSource = "ALL" }, "invalid default_source"},
		{"bad tag filter", func(l *Librato) { l.TagsInclude = []string{"[a"} }, "invalid tags_include"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := unstarted()
			tc.configure(l)
			err := l.Init()
			require.ErrorContains(t, err, tc.wantError)
			requireNoCredentials(t, err.Error())
		})
	}
}

func TestInitDefaults(t *testing.T) {
	cases := []struct {
		name         string
		configure    func(*Librato)
		wantURL      string
		wantTemplate string
	}{
		{"legacy", func(*Librato) {}, defaultAPIRoot + legacyPath, "host"},
		{"tagged", func(l *Librato) { l.API = apiTagged }, defaultAPIRoot + taggedPath, "host"},
		{"source_tag alone", func(l *Librato) { l.SourceTag = "region.host" }, defaultAPIRoot + legacyPath, "region.host"},
		{"source_tag equal to template", func(l *Librato) { l.SourceTag, l.Template = "tags", "tags" }, defaultAPIRoot + legacyPath, "tags"},
		{"explicit url", func(l *Librato) { l.API, l.APIURL = apiTagged, "https://api.example/v1/x" }, "https://api.example/v1/x", "host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := unstarted()
			tc.configure(l)
			require.NoError(t, l.Init())
			require.Equal(t, tc.wantURL, l.APIURL)
			require.Equal(t, tc.wantTemplate, l.Template)
			require.Equal(t, 5*time.Second, time.Duration(l.Timeout), "the documented 5s default")
		})
	}
}

func TestPlainHTTPWarnsUnlessLoopback(t *testing.T) {
	for endpoint, warns := range map[string]bool{
		"http://metrics-api.librato.com/v1/metrics": true,
		"http://127.0.0.1:8080/v1/metrics":          false,
		"http://localhost/v1/metrics":               false,
		"https://metrics-api.librato.com/v1/x":      false,
	} {
		logger := newCaptureLogger()
		l := unstarted()
		l.APIURL = endpoint
		l.Log = logger
		require.NoError(t, l.Init())
		require.Equal(t, warns, strings.Contains(logText(logger), "plain HTTP"), endpoint)
	}
}

func TestConfigLoading(t *testing.T) {
	t.Run("sample.conf loads as shipped", func(t *testing.T) {
		out := loadOutput(t, "https://metrics-api.librato.com/v1/metrics", "")
		require.NotNil(t, out)
		c := config.NewConfig()
		require.NoError(t, c.LoadConfigData([]byte(sampleConfig), config.EmptySourcePath))
		require.NoError(t, c.Outputs[0].Init())
	})
	t.Run("unknown keys are rejected", func(t *testing.T) {
		c := config.NewConfig()
		err := c.LoadConfigData([]byte("[[outputs.librato]]\napi_user = \"u\"\napi_token = \"t\"\nno_such_key = 1\n"), config.EmptySourcePath)
		require.ErrorContains(t, err, "no_such_key")
	})
	t.Run("deprecated source_tag still loads", func(t *testing.T) {
		out := loadOutput(t, "https://metrics-api.librato.com/v1/metrics", `source_tag = "region"`)
		require.Equal(t, "region", out.Output.(*Librato).Template)
	})
	t.Run("every option of the sample is known", func(t *testing.T) {
		var uncommented []string
		for _, line := range strings.Split(sampleConfig, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "# ") && strings.Contains(line, " = ") && !strings.HasPrefix(line, "## ") {
				uncommented = append(uncommented, strings.TrimPrefix(line, "# "))
			}
		}
		require.NotEmpty(t, uncommented)
		settings := strings.Join(uncommented, "\n")
		settings = strings.Replace(settings, `tls_ca = "/etc/telegraf/ca.pem"`, "", 1)
		settings = strings.Replace(settings, `tls_cert = "/etc/telegraf/cert.pem"`, "", 1)
		settings = strings.Replace(settings, `tls_key = "/etc/telegraf/key.pem"`, "", 1)
		settings = strings.Replace(settings, `api_url = "https://metrics-api.librato.com/v1/metrics"`, "", 1)
		settings = strings.Replace(settings, "[outputs.librato.extra_tags]", "", 1)
		settings = strings.Replace(settings, `environment = "production"`, "", 1)
		loadOutput(t, "https://metrics-api.librato.com/v1/metrics", settings)
	})
}

// TestRealisticWorkload: a [[outputs.librato]] block loaded by Telegraf's
// loader and driven through models.RunningOutput delivers every gauge of a
// multi-input workload exactly once.
func TestRealisticWorkload(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{MaxPast: time.Hour})
	out := loadOutput(t, fake.LegacyURL(), "")
	metrics := multiInputWorkload(100, time.Now().Truncate(time.Second))
	// Template "host": the source is the host with dots as underscores, so
	// the per-CPU metrics of a host share name, source and time.
	want := map[fakeKey]int{}
	total := 0
	for _, m := range metrics {
		for _, f := range m.FieldList() {
			if _, isString := f.Value.(string); !isString {
				host, _ := m.GetTag("host")
				want[fakeKey{m.Name() + "." + f.Key, strings.ReplaceAll(host, ".", "_"), m.Time().Unix()}]++
				total++
			}
		}
	}
	for _, m := range metrics {
		out.AddMetric(m)
	}
	require.NoError(t, out.Write())
	require.Zero(t, out.BufferLength())
	for k, n := range want {
		require.Equal(t, n, fake.CountGauge(k.name, k.source, k.time), "%v", k)
	}
	require.Len(t, fake.Gauges(), total)
}

// multiInputWorkload is what cpu, mem, disk, net, system and docker inputs
// report for a fleet of hosts.
func multiInputWorkload(hosts int, now time.Time) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, 9*hosts) // 4 cpu metrics and 5 others a host
	for h := range hosts {
		host := fmt.Sprintf("web-%03d.prod.example.com", h)
		tags := func(kv ...string) map[string]string {
			t := map[string]string{"host": host, "region": []string{"eu-west-1", "us-east-1"}[h%2]}
			for i := 0; i+1 < len(kv); i += 2 {
				t[kv[i]] = kv[i+1]
			}
			return t
		}
		for c := range 4 {
			out = append(out, metric.New("cpu", tags("cpu", fmt.Sprintf("cpu%d", c)), map[string]any{
				"usage_user": 12.5, "usage_system": 3.25, "usage_idle": 84.0, "usage_iowait": 0.25,
				"usage_irq": 0.0, "usage_softirq": 0.1, "usage_steal": 0.0, "usage_guest": 0.0, "usage_nice": 0.0,
			}, now))
		}
		out = append(out,
			metric.New("mem", tags(), map[string]any{
				"total": uint64(17179869184), "available": uint64(8589934592), "used": uint64(8589934592),
				"used_percent": 50.0, "buffered": int64(1024), "cached": int64(4096), "free": int64(2048),
			}, now),
			metric.New("disk", tags("path", "/", "device", "nvme0n1p1", "fstype", "ext4", "mode", "rw"), map[string]any{
				"total": uint64(512110190592), "free": uint64(300000000000), "used": uint64(212110190592),
				"used_percent": 41.4, "inodes_total": uint64(31260672), "inodes_free": uint64(30000000), "inodes_used": uint64(1260672),
			}, now),
			metric.New("net", tags("interface", "eth0"), map[string]any{
				"bytes_sent": uint64(123456789), "bytes_recv": uint64(987654321), "packets_sent": uint64(12345),
				"packets_recv": uint64(54321), "err_in": uint64(0), "err_out": uint64(0), "drop_in": uint64(1), "drop_out": uint64(0),
			}, now),
			metric.New("system", tags(), map[string]any{
				"load1": 0.42, "load5": 0.38, "load15": 0.3, "n_cpus": int64(4), "n_users": int64(2), "uptime": uint64(864000),
				"uptime_format": "10 days, 0:00",
			}, now),
			metric.New("docker_container_cpu", tags("container_name", "api", "container_image", "registry.example.com/api", "cpu", "cpu-total"),
				map[string]any{"usage_percent": 17.5, "usage_total": uint64(123456789012), "throttling_periods": int64(0)}, now),
		)
	}
	return out
}

func TestWriteOfNothingSendsNothing(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL())
	require.NoError(t, l.Write(nil))
	require.NoError(t, l.Write([]telegraf.Metric{metric.New("s", map[string]string{"host": "h"}, map[string]any{"x": "str"}, time.Now())}))
	require.Empty(t, fake.Requests())
}

func TestRequestHeaders(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL())
	metrics, _ := workload(1)
	require.NoError(t, l.Write(metrics))
	reqs := fake.Requests()
	require.Len(t, reqs, 1)
	h := reqs[0].Header
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.True(t, strings.HasPrefix(h.Get("User-Agent"), "telegraf-output-librato/"), h.Get("User-Agent"))
	creds, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h.Get("Authorization"), "Basic "))
	require.NoError(t, err)
	require.Equal(t, testUser+":"+testToken, string(creds))
	require.Empty(t, h.Get("Content-Encoding"))
}

func TestGzip(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{AllowGzip: true})
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.ContentEncoding = "gzip" })
	metrics, want := workload(500)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	for _, r := range fake.Requests() {
		require.Equal(t, "gzip", r.Header.Get("Content-Encoding"))
	}
}

func TestGzipRefusedNamesTheSetting(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.ContentEncoding = "gzip" })
	metrics, _ := workload(5)
	require.ErrorContains(t, l.Write(metrics), "content_encoding")
}

func TestTLSWithCustomCA(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TLS: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, fake.CACertPEM(), 0o600))

	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.TLSCA = ca })
	metrics, want := workload(10)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)

	untrusting := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.RetryBudget = 0 })
	require.ErrorContains(t, untrusting.Write(metrics), "certificate")
}

func TestHTTPProxyURL(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		target, err := url.Parse(fake.URL())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.HTTPProxyURL = proxy.URL })
	metrics, want := workload(10)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	require.Positive(t, proxied.Load())
}

func TestSelfMetrics(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL())
	metrics, want := workload(100)
	metrics = append(metrics, metric.New("bad", map[string]string{"host": "h"}, map[string]any{"nan": nan()}, time.Now()))
	require.NoError(t, l.Write(metrics))

	got := map[string]int64{}
	for _, m := range selfstat.Metrics() {
		if u, _ := m.GetTag("url"); m.Name() != "internal_librato" || u != fake.LegacyURL() {
			continue
		}
		reason, _ := m.GetTag("reason")
		for _, f := range m.FieldList() {
			if v, ok := f.Value.(int64); ok && v != 0 {
				got[strings.TrimSuffix(f.Key+"/"+reason, "/")] = v
			}
		}
	}
	require.Equal(t, int64(len(want)), got["measurements_written"])
	require.Equal(t, int64(1), got["measurements_dropped/invalid_value"])
	require.Equal(t, int64(1), got["requests"])
	require.Positive(t, got["request_time_ns"])
}

func nan() float64 { var zero float64; return zero / zero }

// TestReadmeShowsSampleConfig keeps README.md's configuration section the
// same as the sample.conf that SampleConfig returns.
func TestReadmeShowsSampleConfig(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, block, found := strings.Cut(string(readme), "```toml @sample.conf\n")
	require.True(t, found, "README.md needs a ```toml @sample.conf block")
	block, _, found = strings.Cut(block, "```")
	require.True(t, found)
	require.Equal(t, (&Librato{}).SampleConfig(), block)
}

func TestWriteBeforeConnectFails(t *testing.T) {
	l := unstarted()
	require.NoError(t, l.Init())
	metrics, _ := workload(1)
	require.ErrorContains(t, l.Write(metrics), "not connected")
}
