package librato

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

func TestSourceTemplatesChoose(t *testing.T) {
	cases := []struct {
		name        string
		template    string
		templates   []string
		measurement string
		want        string
	}{
		{name: "default, ordinary metric", template: "host", measurement: "cpu", want: "host"},
		{name: "default, internal metric", template: "host", measurement: "internal_write", want: "host.input.output.alias.url.reason.address.status"},
		{name: "internal_ alone is not internal_*'s match", template: "host", measurement: "internal", want: "host"},
		{name: "template placing a tag: not appended twice", template: "host.output",
			measurement: "internal_write", want: "host.output.input.alias.url.reason.address.status"},
		{name: "template with all tags", template: "host.tags", measurement: "internal_gather", want: "host.tags"},
		{name: "filtered entry", template: "host", templates: []string{"disk host.path"}, measurement: "disk", want: "host.path"},
		{name: "filtered entry, other measurement", template: "host", templates: []string{"disk host.path"}, measurement: "diskio", want: "host"},
		{name: "first match wins", template: "host", templates: []string{"disk* host.name", "disk host.path"}, measurement: "disk", want: "host.name"},
		{name: "default entry replaces template", template: "host", templates: []string{"disk host.path", "region.host"},
			measurement: "cpu", want: "region.host"},
		{name: "built-in rule follows the default entry", template: "host", templates: []string{"region.host"},
			measurement: "internal_gather", want: "region.host.input.output.alias.url.reason.address.status"},
		{name: "user entry naming internal metrics wins", template: "host", templates: []string{"internal_write host"},
			measurement: "internal_write", want: "host"},
		{name: "user glob over internal metrics wins", template: "host", templates: []string{"internal_* host.tags"},
			measurement: "internal_librato", want: "host.tags"},
		{name: "extra spaces", template: "host", templates: []string{"  disk \t host.path "}, measurement: "disk", want: "host.path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := newSourceTemplates(tc.template, tc.templates)
			require.NoError(t, err)
			require.Equal(t, tc.want, st.forMeasurement(tc.measurement))
			// Remembered: asked again, the same answer.
			require.Equal(t, tc.want, st.forMeasurement(tc.measurement))
		})
	}
}

func TestSourceTemplatesInvalid(t *testing.T) {
	for _, entries := range [][]string{
		{"disk host.path extra"},
		{"host", "host.region"},
		{"disk[ host"},
	} {
		_, err := newSourceTemplates("host", entries)
		require.Error(t, err, "%q", entries)
		require.Contains(t, err.Error(), "templates:")
	}
	l := unstarted()
	l.Templates = []string{"a b c"}
	require.ErrorContains(t, l.Init(), "templates:")
}

// TestSourceTemplatesChoicesBounded: measurement names an input invents do
// not grow the remembered choices without bound.
func TestSourceTemplatesChoicesBounded(t *testing.T) {
	st, err := newSourceTemplates("host", nil)
	require.NoError(t, err)
	for i := range maxTemplateChoices + 10 {
		st.choose(fmt.Sprintf("m%d", i))
	}
	require.LessOrEqual(t, len(st.chosen), maxTemplateChoices)
}

// internalMetrics are what inputs.internal reports with two librato
// outputs that differ only by url, with their tags as it sets them.
func internalMetrics(at time.Time) []telegraf.Metric {
	const urlA, urlB = "https://metrics-api.librato.com/v1/metrics", "http://127.0.0.1:8080/v1/metrics"
	var ms []telegraf.Metric
	add := func(name string, tags map[string]string, fields map[string]any) {
		tags["host"] = "vm"
		ms = append(ms, metric.New(name, tags, fields, at))
	}
	for _, url := range []string{urlA, urlB} {
		add("internal_librato", map[string]string{"url": url}, map[string]any{"measurements_written": int64(10), "requests": int64(2)})
		for _, reason := range reasonNames {
			add("internal_librato", map[string]string{"url": url, "reason": reason}, map[string]any{"measurements_dropped": int64(0)})
		}
	}
	add("internal_write", map[string]string{"output": "librato", "version": "1.39.3"}, map[string]any{"metrics_written": int64(5)})
	add("internal_write", map[string]string{"output": "librato", "alias": "backup", "version": "1.39.3"}, map[string]any{"metrics_written": int64(6)})
	add("internal_write", map[string]string{"output": "file", "version": "1.39.3"}, map[string]any{"metrics_written": int64(7)})
	add("internal_gather", map[string]string{"input": "cpu", "version": "1.39.3"}, map[string]any{"metrics_gathered": int64(8)})
	add("internal_gather", map[string]string{"input": "cpu", "alias": "cpu2", "version": "1.39.3"}, map[string]any{"metrics_gathered": int64(9)})
	add("internal_gather", map[string]string{"input": "internal", "version": "1.39.3"}, map[string]any{"metrics_gathered": int64(3)})
	add("internal_agent", map[string]string{"version": "1.39.3", "go_version": "1.25.0"}, map[string]any{"metrics_written": int64(18)})
	add("internal_memstats", map[string]string{}, map[string]any{"heap_alloc_bytes": int64(4096)})
	for _, address := range []string{":8085", "127.0.0.1:9000"} { // two inputs.librato_listener
		add("internal_librato_listener", map[string]string{"address": address}, map[string]any{"requests_received": int64(4)})
		for _, status := range []string{"202", "400"} {
			add("internal_librato_listener", map[string]string{"address": address, "status": status}, map[string]any{"responses": int64(2)})
		}
	}
	return ms
}

// TestDefaultConfigKeepsInternalMetricsApart: with the default template,
// Telegraf's own metrics keep one series each (no collapsed-series
// warning), and every other metric's source is what template alone gives.
func TestDefaultConfigKeepsInternalMetricsApart(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
	at := time.Unix(1790000000, 0)
	metrics := internalMetrics(at)
	metrics = append(metrics, parseLP(t, `
cpu,host=vm,cpu=cpu-total usage_idle=90 1790000000000000000
disk,host=vm,path=/,device=sda1 used=1 1790000000000000000
internalx,host=vm,input=a value=1 1790000000000000000
`)...)

	require.NoError(t, l.Write(metrics))

	require.Empty(t, collisionWarnings(logger))
	require.Zero(t, selfStat(l.APIURL, "measurements_collapsed", ""))
	gauges := fake.Gauges()
	got := make([]string, 0, len(gauges))
	for _, g := range gauges {
		got = append(got, g.Name+" "+g.Source)
	}
	slices.Sort(got)
	// The golden list is long for measurements_dropped: one series per url
	// and reason. Compare the rest exactly and count those.
	var dropped []string
	rest := make([]string, 0, len(got))
	for _, g := range got {
		if strings.HasPrefix(g, "internal_librato.measurements_dropped ") {
			dropped = append(dropped, g)
			continue
		}
		rest = append(rest, g)
	}
	require.Len(t, dropped, 2*len(reasonNames))
	require.Contains(t, dropped, "internal_librato.measurements_dropped vm.http---127_0_0_1-8080-v1-metrics.empty_name")
	require.Equal(t, []string{
		"cpu.usage_idle vm",
		"disk.used vm",
		"internal_agent.metrics_written vm",
		"internal_gather.metrics_gathered vm.cpu",
		"internal_gather.metrics_gathered vm.cpu.cpu2",
		"internal_gather.metrics_gathered vm.internal",
		"internal_librato.measurements_written vm.http---127_0_0_1-8080-v1-metrics",
		"internal_librato.measurements_written vm.https---metrics-api_librato_com-v1-metrics",
		"internal_librato.requests vm.http---127_0_0_1-8080-v1-metrics",
		"internal_librato.requests vm.https---metrics-api_librato_com-v1-metrics",
		"internal_librato_listener.requests_received vm.-8085",
		"internal_librato_listener.requests_received vm.127_0_0_1-9000",
		"internal_librato_listener.responses vm.-8085.202",
		"internal_librato_listener.responses vm.-8085.400",
		"internal_librato_listener.responses vm.127_0_0_1-9000.202",
		"internal_librato_listener.responses vm.127_0_0_1-9000.400",
		"internal_memstats.heap_alloc_bytes vm",
		"internal_write.metrics_written vm.file",
		"internal_write.metrics_written vm.librato",
		"internal_write.metrics_written vm.librato.backup",
		"internalx vm",
	}, rest)
}

// TestCombinedTemplatesSuggestion: collisions in several measurements get
// one templates setting that fixes them all, not a template each.
func TestCombinedTemplatesSuggestion(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
	require.NoError(t, l.Write(parseLP(t, `
disk,host=db-1,path=/ used=1 1790000000000000000
disk,host=db-1,path=/home used=3 1790000000000000000
net,host=db-1,interface=eth0 bytes_recv=1 1790000000000000000
net,host=db-1,interface=eth1 bytes_recv=2 1790000000000000000
`)))
	warnings := collisionWarnings(logger)
	require.Len(t, warnings, 2, "%q", warnings)
	for _, w := range warnings {
		require.Contains(t, w, `(templates = ["disk host.path", "net host.interface"])`)
		require.NotContains(t, w, `template = "`)
	}

	// The suggestion, once set, silences both.
	fake = newFake(t, fakelibrato.Options{})
	logger = newCaptureLogger()
	l = newPlugin(t, fake.LegacyURL(), func(l *Librato) {
		l.Log = logger
		l.Templates = []string{"disk host.path", "net host.interface"}
	})
	require.NoError(t, l.Write(parseLP(t, `
disk,host=db-1,path=/ used=1 1790000000000000000
disk,host=db-1,path=/home used=3 1790000000000000000
net,host=db-1,interface=eth0 bytes_recv=1 1790000000000000000
net,host=db-1,interface=eth1 bytes_recv=2 1790000000000000000
cpu,host=db-1,cpu=cpu0 usage_idle=1 1790000000000000000
`)))
	require.Empty(t, collisionWarnings(logger))
	gauges := fake.Gauges()
	got := make([]string, 0, len(gauges))
	for _, g := range gauges {
		got = append(got, g.Name+" "+g.Source)
	}
	slices.Sort(got)
	require.Equal(t, []string{"cpu.usage_idle db-1", "disk.used db-1.-", "disk.used db-1.-home", "net.bytes_recv db-1.eth0", "net.bytes_recv db-1.eth1"}, got)
}

// TestCombinedTemplatesBounded: a combined suggestion names a few entries
// and how many more measurements need one.
func TestCombinedTemplatesBounded(t *testing.T) {
	advices := make([]advice, 0, maxCombined+2)
	for i := range maxCombined + 2 {
		advices = append(advices, advice{measurement: fmt.Sprintf("m%02d", i), templates: []string{"host.k"}})
	}
	got := combineTemplates(advices)
	require.True(t, strings.HasPrefix(got, `templates = ["m00 host.k", `), got)
	require.True(t, strings.HasSuffix(got, "for 2 more measurements"), got)
	require.Empty(t, combineTemplates(advices[:1]))
}

// TestTemplateChoiceDoesNotAllocate: once a flush's measurements and tag
// sets are cached, converting them again, internal_* with their own
// template included, allocates nothing.
func TestTemplateChoiceDoesNotAllocate(t *testing.T) {
	conv, err := newConverter(converterConfig{template: "host", templates: []string{"disk host.path"}}, newStats("alloc-test"), quietLogger{})
	require.NoError(t, err)
	metrics := internalMetrics(time.Unix(1790000000, 0))
	metrics = append(metrics, parseLP(t, "disk,host=vm,path=/ used=1 1790000000000000000\ncpu,host=vm usage_idle=1 1790000000000000000")...)
	conv.convert(metrics)
	require.Zero(t, testing.AllocsPerRun(100, func() { conv.convert(metrics) }))
}

// TestSuggestedTemplatesEntryMatchesOnlyItsMeasurement: the templates entry
// a collision warning suggests, once set, keeps the measurement's series
// apart and leaves every other measurement's source as it is, even when the
// measurement's name holds glob characters (a filter "app[1]" would match
// "app1" and not "app[1]"; "req*" would match "requests" too).
func TestSuggestedTemplatesEntryMatchesOnlyItsMeasurement(t *testing.T) {
	for _, tc := range []struct{ measurement, lpName, other, otherSent string }{
		{"app[1]", "app[1]", "app1", ""},
		{"req*", "req*", "requests", ""},
		{"q?", "q?", "qx", ""},
		{`a\b*`, `a\b*`, `a\bc`, "a-bc"}, // as Librato's name
		{"x[", "x[", "x", ""},
		{"my disk", `my\ disk`, "my_disk", ""},
	} {
		t.Run(tc.measurement, func(t *testing.T) {
			lp := fmt.Sprintf("%[1]s,host=db-1,path=/ used=1 1790000000000000000\n%[1]s,host=db-1,path=/home used=3 1790000000000000000\n"+
				"%[2]s,host=db-1,path=/ used=5 1790000000000000000\n", tc.lpName, tc.other)
			fake := newFake(t, fakelibrato.Options{})
			logger := newCaptureLogger()
			l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
			require.NoError(t, l.Write(parseLP(t, lp)))
			warnings := collisionWarnings(logger)
			require.Len(t, warnings, 1)
			i := strings.Index(warnings[0], "templates = [")
			if i < 0 {
				// No templates entry can name it: the advice must say
				// something else that works.
				require.Contains(t, warnings[0], `template = "host.path"`)
				require.Contains(t, warnings[0], `api = "tagged"`)
				return
			}
			m := regexp.MustCompile(`templates = \[("(?:[^"\\]|\\.)*")\]`).FindStringSubmatch(warnings[0][i:])
			require.NotNil(t, m, warnings[0])
			entry, err := strconv.Unquote(m[1]) // the %q the warning printed; TOML reads these escapes alike
			require.NoError(t, err)
			cfg := struct{ Templates []string }{[]string{entry}}

			fake = newFake(t, fakelibrato.Options{})
			logger = newCaptureLogger()
			l = newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger; l.Templates = cfg.Templates })
			require.NoError(t, l.Write(parseLP(t, lp)))
			require.Empty(t, collisionWarnings(logger), "the suggested %q keeps them apart", cfg.Templates)
			var otherSources []string
			for _, g := range fake.Gauges() {
				if strings.HasPrefix(g.Name, cmpOr(tc.otherSent, tc.other)+".") {
					otherSources = append(otherSources, g.Source)
				}
			}
			require.Equal(t, []string{"db-1"}, otherSources, "%q keeps its source", tc.other)
		})
	}
}
