package librato

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs/disk"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/benchkit"
	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

const collisionWarning = "Librato keeps one value per metric name"

// selfStat reads one internal_librato counter of the plugin writing to url;
// reason selects a measurements_dropped reason.
func selfStat(url, field, reason string) int64 {
	var sum int64
	for _, m := range selfstat.Metrics() {
		u, _ := m.GetTag("url")
		r, _ := m.GetTag("reason")
		if m.Name() != "internal_librato" || u != url || r != reason {
			continue
		}
		if v, ok := m.GetField(field); ok {
			sum += v.(int64)
		}
	}
	return sum
}

// collisionWarnings returns the collapsed-series warnings logged.
func collisionWarnings(logger *testutil.CaptureLogger) []string {
	var out []string
	for _, e := range logger.Messages() {
		if e.Level == testutil.LevelWarn && strings.Contains(e.Text, collisionWarning) {
			out = append(out, e.Text)
		}
	}
	return out
}

// threeMounts is inputs.disk on a host with three mounts.
const threeMounts = `
disk,host=db-1,path=/,device=sda1,fstype=ext4 used=1,free=2 1790000000000000000
disk,host=db-1,path=/home,device=sda2,fstype=ext4 used=3,free=4 1790000000000000000
disk,host=db-1,path=/boot,device=sda3,fstype=vfat used=5,free=6 1790000000000000000
disk,host=db-2,path=/,device=sda1,fstype=ext4 used=7,free=8 1790000000000000000
`

func TestCollapsedSeries(t *testing.T) {
	cases := []struct {
		name      string
		api       string
		configure func(*Librato)
		lp        string
		collapsed int64
		warnings  int      // lines: one per way names collide
		advice    []string // in every warning
	}{
		{
			name: "disk mounts, template host", lp: threeMounts, collapsed: 4, warnings: 1,
			advice: []string{`"disk.free", "disk.used" at 1790000000 with source "db-1" from 3 metrics`, `They differ in tag(s) "device", "path", "fstype"`,
				`add one to the source, leaving other metrics' sources as they are ` +
					`(templates = ["disk host.device"] or templates = ["disk host.path"]), or use api = "tagged"`},
		},
		{
			name: "disk mounts, template host.path", lp: threeMounts,
			configure: func(l *Librato) { l.Template = "host.path" },
		},
		{name: "disk mounts, tagged API", api: apiTagged, lp: threeMounts},
		{
			name: "tagged API, the differing tags excluded", api: apiTagged, lp: threeMounts, collapsed: 4, warnings: 1,
			configure: func(l *Librato) { l.TagsExclude = []string{"path", "device", "fstype"} },
			advice:    []string{`tags {"host":"db-1"}`, `which are not sent (tags_include, tags_exclude`},
		},
		{
			name: "one CPU per core and the total", collapsed: 2, warnings: 1,
			lp: `
cpu,host=web,cpu=cpu0 usage_idle=90 1790000000000000000
cpu,host=web,cpu=cpu1 usage_idle=80 1790000000000000000
cpu,host=web,cpu=cpu-total usage_idle=85 1790000000000000000
`,
			advice: []string{`templates = ["cpu host.cpu"]`},
		},
		{
			name: "same tags in another second", lp: `
temp,host=a value=1 1790000000000000000
temp,host=a value=2 1790000001000000000
`,
		},
		{
			name: "same tags within one second", collapsed: 1, warnings: 1, lp: `
temp,host=a value=1 1790000000000000000
temp,host=a value=2 1790000000500000000
`,
			advice: []string{`source "a"`, "Their tags are identical"},
		},
		{
			name: "measurement names equal once sanitised", collapsed: 1, warnings: 1, lp: `
a\ b,host=h value=1 1790000000000000000
a-b,host=h value=2 1790000000000000000
`,
			advice: []string{`measurements "a b" and "a-b"`, "rename one"},
		},
		{
			name: "one source override for two hosts", collapsed: 1, warnings: 1,
			configure: func(l *Librato) { l.SourceOverrideTag = "librato_source" }, lp: `
jobs,host=a,librato_source=batch queued=1 1790000000000000000
jobs,host=b,librato_source=batch queued=2 1790000000000000000
`,
			advice: []string{`They differ in tag(s) "host": give them distinct "librato_source" values`},
		},
		{
			name: "no host, default_source", collapsed: 1, warnings: 1,
			configure: func(l *Librato) { l.DefaultSource = "unknown" }, lp: `
disk,path=/ used=1 1790000000000000000
disk,path=/home used=2 1790000000000000000
`,
			advice: []string{`source "unknown"`, `templates = ["disk host.path"]`},
		},
		{
			name: "template with all tags, values equal once sanitised", collapsed: 1, warnings: 1,
			configure: func(l *Librato) { l.Template = "host.tags" }, lp: `
disk,host=h,path=a:b used=1 1790000000000000000
disk,host=h,path=a;b used=2 1790000000000000000
`,
			advice: []string{`which the template uses but sanitising makes equal`},
		},
		// Librato compares sources and names regardless of case, and
		// lower-cases tags: these are one series to it.
		{
			name: "sources differ only in case", collapsed: 1, warnings: 1, lp: `
temp,host=WEB1 value=1 1790000000000000000
temp,host=web1 value=2 1790000000000000000
`,
			advice: []string{`source "web1" from 2 metrics`, `They differ only in the case of tag(s) "host", which Librato ignores`},
		},
		{
			name: "tag values differ only in case", api: apiTagged, collapsed: 1, warnings: 1, lp: `
temp,host=WEB1 value=1 1790000000000000000
temp,host=web1 value=2 1790000000000000000
`,
			advice: []string{`from 2 metrics`, `They differ only in the case of tag(s) "host", which Librato ignores`},
		},
		{
			name: "names differ only in case", collapsed: 1, warnings: 1, lp: `
CPU,host=a idle=1 1790000000000000000
cpu,host=a idle=2 1790000000000000000
`,
			advice: []string{`"cpu.idle" at 1790000000 with source "a" from 2 metrics`, `measurements "CPU" and "cpu"`, "rename one"},
		},
		// Distinct fields whose names the hand-written hash of old took for
		// one in every process (byte 7 +-0x40 cancelled byte 11 +-0x08).
		{
			name: "names that collided in the old name hash", lp: `
disk,host=h iop_rda_max=1,io0_rdi_max=2,io0_rdy_max=3 1790000000000000000
disk,host=h iop_rda_max=1,io0_rdi_max=2,io0_rdy_max=3 1790000010000000000
`,
		},
		{
			name: "names that collided in the old name hash, tagged", api: apiTagged, lp: `
disk,host=h iop_rda_max=1,io0_rdi_max=2,io0_rdy_max=3 1790000000000000000
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, fakelibrato.Options{})
			api := cmpOr(tc.api, apiLegacy)
			logger := newCaptureLogger()
			l := newPlugin(t, apiURL(fake, api), func(l *Librato) {
				l.API, l.Log = api, logger
				if tc.configure != nil {
					tc.configure(l)
				}
			})
			metrics := parseLP(t, tc.lp)

			require.NoError(t, l.Write(metrics))

			require.Equal(t, tc.collapsed, selfStat(l.APIURL, "measurements_collapsed", ""))
			warnings := collisionWarnings(logger)
			require.Len(t, warnings, tc.warnings, "%q", warnings)
			for _, w := range warnings {
				for _, a := range tc.advice {
					require.Contains(t, w, a)
				}
			}
			// Colliding measurements are still sent: the user decides.
			sent := len(fake.Gauges()) + len(fake.Measurements())
			require.Equal(t, benchkit.Gauges(metrics), sent)
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestCollapsedSeriesWarning(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
	require.NoError(t, l.Write(parseLP(t, "disk,host=db-1,path=/ used=1 1790000000000000000\ndisk,host=db-1,path=/home used=3 1790000000000000000")))
	require.Equal(t, []string{`Librato keeps one value per metric name, source and second: the measurements of "disk.used" ` +
		`at 1790000000 with source "db-1" from 2 metrics are merged into one each, the others are lost. They differ in tag(s) "path": ` +
		`add one to the source, leaving other metrics' sources as they are (templates = ["disk host.path"]), or use api = "tagged". ` +
		`(warned once per metric name; measurements_collapsed counts them)`}, collisionWarnings(logger))
}

// TestCollapsedSeriesOncePerName: the warning comes once per metric name and
// process; the count comes with every delivered flush, and a failed flush's
// collisions are counted with its retry only.
func TestCollapsedSeriesOncePerName(t *testing.T) {
	fail := true
	fake := newFake(t, fakelibrato.Options{Fault: func(int, *fakelibrato.Received) fakelibrato.Action {
		if fail {
			return fakelibrato.Action{Status: http.StatusServiceUnavailable}
		}
		return fakelibrato.Action{}
	}})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log, l.RetryBudget = logger, 0 })
	metrics := parseLP(t, threeMounts)

	require.Error(t, l.Write(metrics))
	require.Zero(t, selfStat(l.APIURL, "measurements_collapsed", ""))
	fail = false
	require.NoError(t, l.Write(metrics))
	require.Equal(t, int64(4), selfStat(l.APIURL, "measurements_collapsed", ""))
	later := parseLP(t, strings.ReplaceAll(threeMounts, "1790000000", "1790000010"))
	require.NoError(t, l.Write(later))
	require.Equal(t, int64(8), selfStat(l.APIURL, "measurements_collapsed", ""))

	require.Len(t, collisionWarnings(logger), 1, "disk.used and disk.free, once")
}

func TestCollapsedSeriesWarningsAreBounded(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })
	colliding := func(from, to int) string {
		var lp strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&lp, "m%d,host=h,k=a value=1 1790000000000000000\nm%d,host=h,k=b value=2 1790000000000000000\n", i, i)
		}
		return lp.String()
	}

	require.NoError(t, l.Write(parseLP(t, colliding(0, maxCollisionWarnings-1))))
	require.NoError(t, l.Write(parseLP(t, colliding(maxCollisionWarnings-1, maxCollisionWarnings+5))))

	require.Equal(t, int64(maxCollisionWarnings+5), selfStat(l.APIURL, "measurements_collapsed", ""))
	warnings := collisionWarnings(logger)
	require.Len(t, warnings, 2)
	require.Contains(t, warnings[0], fmt.Sprintf(`"m100" and %d more names`, maxCollisionWarnings-1-4))
	require.Contains(t, warnings[1], fmt.Sprintf(`the measurements of "m%d" at`, maxCollisionWarnings-1), "the last name within the bound only")
}

// TestDiskMountsCollapse runs the real inputs.disk: with template "host",
// the mounts of this machine share one source, and the warning says so once
// and proposes host.path.
func TestDiskMountsCollapse(t *testing.T) {
	d := &disk.Disk{Log: testutil.Logger{Quiet: true}}
	require.NoError(t, d.Init())
	var acc testutil.Accumulator
	require.NoError(t, d.Gather(&acc))
	metrics := acc.GetTelegrafMetrics()
	paths := map[string]bool{}
	for _, m := range metrics {
		p, _ := m.GetTag("path")
		paths[p] = true
	}
	if len(paths) < 2 {
		t.Skipf("inputs.disk found %d mount(s) on this machine; the test needs at least 2", len(paths))
	}
	// As the agent does: the global host tag, times rounded to the second.
	at := time.Now().Truncate(time.Second)
	for _, m := range metrics {
		m.AddTag("host", "db-1")
		m.SetTime(at)
	}
	fake := newFake(t, fakelibrato.Options{})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.Log = logger })

	require.NoError(t, l.Write(metrics))
	next := make([]telegraf.Metric, len(metrics))
	for i, m := range metrics {
		next[i] = m.Copy()
		next[i].SetTime(at.Add(10 * time.Second))
	}
	require.NoError(t, l.Write(next))

	warnings := collisionWarnings(logger)
	require.Len(t, warnings, 1, "once: %q", warnings)
	fields := benchkit.Gauges(metrics[:1])
	require.Contains(t, warnings[0], fmt.Sprintf(`"disk.free", "disk.inodes_free", "disk.inodes_total", "disk.inodes_used" and %d more names`, fields-4))
	require.Contains(t, warnings[0], fmt.Sprintf("with source \"db-1\" from %d metrics", len(metrics)))
	require.Contains(t, warnings[0], `templates = ["disk host.path"]`)
	require.Contains(t, warnings[0], `api = "tagged"`)
	require.Equal(t, int64(2*fields*(len(metrics)-1)), selfStat(l.APIURL, "measurements_collapsed", ""))
	require.Len(t, fake.Gauges(), 2*benchkit.Gauges(metrics), "colliding measurements are still sent")
}

// TestHeldMemoryCollisionExplainer: the explainer of a collision keeps the
// tags of the metrics behind it only while it writes the warning. It kept
// them until a later collision overwrote them: 64 MiB after one flush of
// colliding metrics with large tags.
func TestHeldMemoryCollisionExplainer(t *testing.T) {
	skipHeavy(t)
	sink := benchkit.NewSink()
	t.Cleanup(sink.Close)
	l := newPlugin(t, sink.URL(), func(l *Librato) { l.Log = quietLogger{} })

	const names, tagBytes = 256, 128 << 10 // two metrics per name: 64 MiB of tags
	held := heldAfter(t, l, func() {
		metrics := make([]telegraf.Metric, 0, 2*names)
		for i := range 2 * names {
			// Unique, too large for the series cache, not in the source
			// (template "host"): after the Write only a culprit holds it.
			big := strconv.Itoa(i) + strings.Repeat("x", tagBytes)
			metrics = append(metrics, metric.New(fmt.Sprintf("m%d", i/2), map[string]string{"host": "h", "request": big},
				map[string]any{"value": 1.0}, time.Unix(1790000000, 0)))
		}
		require.NoError(t, l.Write(metrics))
		require.Equal(t, int64(names), selfStat(l.APIURL, "measurements_collapsed", ""), "every name collided")
	})
	requireHeldWithin(t, held, buffersBudget(l)+4<<20) // nothing large but the buffers
}

// BenchmarkCollisionFinder is the finder alone on the benchmark workload
// (9,000 gauges, half of them colliding under template "host").
func BenchmarkCollisionFinder(b *testing.B) {
	for _, api := range []string{apiLegacy, apiTagged} {
		b.Run(api, func(b *testing.B) {
			st := newStats("bench-collisions-" + api)
			conv, err := newConverter(converterConfig{tagged: api == apiTagged, template: "host"}, st, quietLogger{})
			require.NoError(b, err)
			metrics := benchkit.Workload(benchkit.Hosts, benchkit.Now())
			pts := conv.convert(metrics)
			f := newCollisionFinder("host", "", st, quietLogger{})
			f.find(metrics, pts, api == apiTagged, conv)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				f.find(metrics, pts, api == apiTagged, conv)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/gauge")
		})
	}
}

// quietLogger drops warnings too, for benchmarks.
type quietLogger struct{ testutil.Logger }

func (quietLogger) Warnf(string, ...any) {}
func (quietLogger) Warn(...any)          {}

// TestCollisionCountMatchesBruteForce compares the finder's count with a
// plain count of (name, series key, second), case-folded as Librato
// compares them, on random flushes: runs of metrics that share tags or not,
// fields in any order, names equal in text but not in memory or only but
// for case, measurements sharing names, duplicates.
func TestCollisionCountMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	st := newStats("collisions-brute-force")
	f := newCollisionFinder("host", "", st, quietLogger{})
	// wide has 80 fields: runs past maxScannedRun names.
	measurements := []string{"cpu", "disk", "disk.io", "mem", "CPU", "wide"}
	fields := []string{"a", "b", "c", "d", "e", "A"}
	// As the converter makes them: one series per tag set, so tag sets may
	// share a source; case aside, equal sources or tags are one series.
	sources := map[bool][]*series{
		false: {legacySeriesOf("h1"), legacySeriesOf("h1"), legacySeriesOf("h2"), legacySeriesOf("H1")},
		true: {taggedSeriesOf("host", "h1"), taggedSeriesOf("host", "h1"), taggedSeriesOf("host", "h2"),
			taggedSeriesOf("host", "H1"), taggedSeriesOf("HOST", "h1")},
	}
	for round := range 300 {
		for _, tagged := range []bool{false, true} {
			pts := make([]point, 0, 40*len(fields))
			for range rng.IntN(40) + 1 {
				m := measurements[rng.IntN(len(measurements))]
				s := sources[tagged][rng.IntN(len(sources[tagged]))]
				tm := int64(1790000000 + rng.IntN(2))
				n := len(fields)
				if m == "wide" {
					n = 80
				}
				for _, i := range rng.Perm(n)[:rng.IntN(n)+1] {
					name := m + "." + fmt.Sprint("f", i)
					if i < len(fields) {
						name = m + "." + fields[i]
					}
					if rng.IntN(4) == 0 {
						name = strings.Clone(name)
					}
					pts = append(pts, pointOf(name, s, tm))
				}
			}
			want, seen := 0, map[string]bool{}
			for _, p := range pts {
				k := strings.ToLower(fmt.Sprint(p.Name, "\x00", seriesKeyOf(p.Series, tagged), "\x00", p.Time))
				if seen[k] {
					want++
				}
				seen[k] = true
			}
			f.find(nil, pts, tagged, nil)
			require.Equal(t, want, f.collapsed, "round %d, tagged %v", round, tagged)
		}
	}
}

// legacySeriesOf, taggedSeriesOf and pointOf make series and points with
// their identities, as the converter does.
func legacySeriesOf(source string) *series {
	return &series{Source: source, Identity: foldHash(source)}
}

func taggedSeriesOf(key, value string) *series {
	pairs := [][2]string{{key, value}}
	return &series{Tags: string(appendTagObject(nil, pairs)), Identity: tagsIdentity(pairs)}
}

func pointOf(name string, s *series, t int64) point {
	return point{Name: name, NameHash: foldHash(name), Series: s, Time: t}
}
