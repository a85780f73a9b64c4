package librato

import (
	"hash/maphash"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// TestFoldHash: strings Librato takes for one (ASCII case aside) hash
// alike, whatever their length; others do not.
func TestFoldHash(t *testing.T) {
	long := strings.Repeat("abcdefghij", 30) // past the 128-byte buffer
	cases := []struct {
		a, b string
		same bool
	}{
		{"web1", "WEB1", true},
		{"cpu.usage_idle", "CPU.Usage_Idle", true},
		{"", "", true},
		{long, strings.ToUpper(long), true},
		{long + "x", strings.ToUpper(long) + "X", true},
		{"web1", "web2", false},
		{"web1", "web1 ", false},
		{long, long[:len(long)-1] + "K", false},
		// The hand-written hash this replaced had collisions no seed could
		// break: in a 16-byte name, byte 7 ±0x40 cancelled byte 11 ±0x08.
		{"disk.iop_rda_max", "disk.io0_rdi_max", false},
		{"disk.iop_rda_max", "disk.io0_rdy_max", false},
		{"disk.io0_rdi_max", "disk.io0_rdy_max", false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.same, foldHash(tc.a) == foldHash(tc.b), "%q vs %q", tc.a, tc.b)
		require.Equal(t, maphash.String(identitySeed, strings.ToLower(tc.a)), foldHash(tc.a),
			"the hash of the lower-cased text, however it is split: %q", tc.a)
	}
}

// The converter hashes names and series on cache misses, and uncached ones
// on every metric: that must not allocate.
func TestFoldHashDoesNotAllocate(t *testing.T) {
	mixed := strings.Repeat("Host-", 100)
	require.Zero(t, testing.AllocsPerRun(100, func() {
		foldHash("cpu.usage_idle")
		foldHash(mixed)
	}))
}

func TestTagsIdentity(t *testing.T) {
	pairs := func(kv ...string) [][2]string {
		var out [][2]string
		for pair := range slices.Chunk(kv, 2) {
			out = append(out, [2]string{pair[0], pair[1]})
		}
		return out
	}
	base := tagsIdentity(pairs("env", "prod", "host", "web1"))
	cases := []struct {
		name  string
		pairs [][2]string
		same  bool
	}{
		{"values lower-cased by Librato", pairs("env", "PROD", "host", "Web1"), true},
		{"keys lower-cased by Librato, so in another order", pairs("Host", "web1", "env", "prod"), true},
		{"another value", pairs("env", "prod", "host", "web2"), false},
		{"a key and value boundary moved", pairs("env", "prod", "hos", "tweb1"), false},
		{"a tag fewer", pairs("host", "web1"), false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.same, base == tagsIdentity(tc.pairs), tc.name)
	}
	unsorted := pairs("Host", "web1", "env", "prod")
	tagsIdentity(unsorted)
	require.Equal(t, pairs("Host", "web1", "env", "prod"), unsorted, "the caller's pairs stay as they are sent")
}

// TestConverterIdentities: every point carries the identities the screens
// compare, equal where Librato stores one series, for both APIs.
func TestConverterIdentities(t *testing.T) {
	at := time.Unix(1790000000, 0)
	m := func(name string, tags map[string]string) telegraf.Metric {
		return metric.New(name, tags, map[string]any{"idle": 1.0}, at)
	}
	cases := []struct {
		name   string
		tagged bool
		a, b   telegraf.Metric
		same   bool
	}{
		{"legacy: sources differ in case", false,
			m("cpu", map[string]string{"host": "WEB1"}), m("cpu", map[string]string{"host": "web1"}), true},
		{"legacy: names differ in case", false,
			m("CPU", map[string]string{"host": "web1"}), m("cpu", map[string]string{"host": "web1"}), true},
		{"legacy: one source from different tags", false,
			m("cpu", map[string]string{"host": "web1", "cpu": "cpu0"}), m("cpu", map[string]string{"host": "web1"}), true},
		{"legacy: other source", false,
			m("cpu", map[string]string{"host": "web1"}), m("cpu", map[string]string{"host": "web2"}), false},
		{"tagged: values differ in case", true,
			m("cpu", map[string]string{"host": "WEB1"}), m("cpu", map[string]string{"host": "web1"}), true},
		{"tagged: keys differ in case", true,
			m("cpu", map[string]string{"Host": "web1", "env": "x"}), m("cpu", map[string]string{"host": "web1", "env": "x"}), true},
		{"tagged: other tags", true,
			m("cpu", map[string]string{"host": "web1", "cpu": "cpu0"}), m("cpu", map[string]string{"host": "web1"}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newConverter(converterConfig{tagged: tc.tagged, template: "host"}, newStats("identities"), testutil.Logger{Quiet: true})
			require.NoError(t, err)
			pts := c.convert([]telegraf.Metric{tc.a, tc.b})
			require.Len(t, pts, 2)
			for _, p := range pts {
				require.Equal(t, foldHash(p.Name), p.NameHash, p.Name)
				require.NotZero(t, p.Series.Identity)
			}
			first := pointIdentity(&pts[0])
			require.Equal(t, tc.same, first == pointIdentity(&pts[1]))
			c.release()
			// From the cache, the second time: the same identities.
			again := c.convert([]telegraf.Metric{tc.a})
			require.Equal(t, first, pointIdentity(&again[0]))
		})
	}
}
