// Package benchkit is the shared workload and harness of the plugin's
// benchmarks: bench_test.go in the root package and cmd/librato-bench run
// the same code, so the numbers they print are comparable.
package benchkit

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

const (
	// Hosts is the size of the default workload: 100 hosts give 1,000
	// metrics (Telegraf's default metric_batch_size) and 9,000 gauges.
	Hosts = 100
	// Interval is the collection interval between workload snapshots.
	Interval = 10 * time.Second
)

// Load is a benchmark workload: one collection interval of a fleet.
type Load struct {
	Name    string
	Metrics func(hosts int, at time.Time) []telegraf.Metric
}

// The workloads: Standard (Workload) has host, region and dc tags on every
// metric and five inputs; FleetLoad (Fleet) is the minimal agent's cpu,
// mem, disk and net with bool and string fields.
var (
	Standard  = Load{Name: "standard", Metrics: Workload}
	FleetLoad = Load{Name: "fleet", Metrics: Fleet}
)

var regions = [...]string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"}

// Now is a recent timestamp on an interval boundary, as Telegraf's
// round_interval gives.
func Now() time.Time { return time.Now().Truncate(Interval) }

// Workload returns one collection interval of a fleet of hosts, as the
// system inputs of Telegraf report it: per host cpu (two cores and the
// total, 10 fields each), mem (10 fields), disk (two mounts, 8 fields),
// net (two interfaces, 8 fields) and diskio (two devices, 9 fields) — 10
// metrics and 90 gauges per host, with float, signed and unsigned values.
// Every metric carries host, region and dc tags plus its input's own. The
// values are pseudo-random but depend only on the host and at.
func Workload(hosts int, at time.Time) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, hosts*MetricsPerHost)
	for h := range hosts {
		out = appendHost(out, h, at)
	}
	return out
}

// Intervals returns n consecutive collection intervals of the workload,
// Interval apart, starting at start.
func Intervals(hosts, n int, start time.Time) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, n*hosts*MetricsPerHost)
	for i := range n {
		out = append(out, Workload(hosts, start.Add(time.Duration(i)*Interval))...)
	}
	return out
}

// Shift returns copies of ms moved d later: the next collection of the same
// series, as fresh metrics that a RunningOutput may take ownership of.
func Shift(ms []telegraf.Metric, d time.Duration) []telegraf.Metric {
	out := make([]telegraf.Metric, len(ms))
	for i, m := range ms {
		c := m.Copy()
		c.SetTime(m.Time().Add(d))
		out[i] = c
	}
	return out
}

// Gauges counts the measurements both plugins send for ms: every field
// with a numeric or boolean value.
func Gauges(ms []telegraf.Metric) int {
	n := 0
	for _, m := range ms {
		for _, f := range m.FieldList() {
			switch f.Value.(type) {
			case float64, int64, uint64, bool:
				n++
			}
		}
	}
	return n
}

// MetricsPerHost is the number of metrics per host in one interval.
const MetricsPerHost = 10

func appendHost(out []telegraf.Metric, h int, at time.Time) []telegraf.Metric {
	rng := rand.New(rand.NewPCG(uint64(at.Unix()), uint64(h)))
	region := regions[h%len(regions)]
	base := func(extra ...string) map[string]string {
		tags := map[string]string{
			"host":   fmt.Sprintf("host-%03d", h),
			"region": region,
			"dc":     fmt.Sprintf("%s%c", region, 'a'+rune(h%2)),
		}
		for i := 0; i+1 < len(extra); i += 2 {
			tags[extra[i]] = extra[i+1]
		}
		return tags
	}
	pct := func() float64 { return rng.Float64() * 100 }
	big := func(scale float64) uint64 { return uint64(rng.Float64() * scale) }

	for _, cpu := range []string{"cpu0", "cpu1", "cpu-total"} {
		out = append(out, metric.New("cpu", base("cpu", cpu), cpuFields(pct), at))
	}

	total := uint64(16 << 30)
	avail := big(float64(total))
	out = append(out, metric.New("mem", base(), memFields(total, avail, big), at))

	for _, d := range [...]struct{ path, device, fstype string }{
		{"/", "sda1", "ext4"},
		{"/var/lib/docker", "nvme0n1p1", "xfs"},
	} {
		size, inodes := uint64(500<<30), uint64(32<<20)
		used, iused := big(float64(size)), big(float64(inodes))
		out = append(out, metric.New("disk", base("path", d.path, "device", d.device, "fstype", d.fstype, "mode", "rw"), map[string]any{
			"total":               size,
			"free":                size - used,
			"used":                used,
			"used_percent":        float64(used) / float64(size) * 100,
			"inodes_total":        inodes,
			"inodes_free":         inodes - iused,
			"inodes_used":         iused,
			"inodes_used_percent": float64(iused) / float64(inodes) * 100,
		}, at))
	}

	for _, iface := range []string{"eth0", "eth1"} {
		out = append(out, metric.New("net", base("interface", iface), map[string]any{
			"bytes_sent":   big(1e13),
			"bytes_recv":   big(1e13),
			"packets_sent": big(1e10),
			"packets_recv": big(1e10),
			"err_in":       big(10),
			"err_out":      big(10),
			"drop_in":      big(1e3),
			"drop_out":     big(1e2),
		}, at))
	}

	for _, dev := range []string{"sda", "nvme0n1"} {
		out = append(out, metric.New("diskio", base("name", dev), map[string]any{
			"reads":            big(1e9),
			"writes":           big(1e9),
			"read_bytes":       big(1e13),
			"write_bytes":      big(1e13),
			"read_time":        big(1e8),
			"write_time":       big(1e8),
			"io_time":          big(1e8),
			"weighted_io_time": big(1e9),
			"iops_in_progress": int64(rng.IntN(8)),
		}, at))
	}
	return out
}

// FleetMetricsPerHost is the number of metrics per host in one interval of
// the fleet workload.
const FleetMetricsPerHost = 10

// Fleet returns one collection interval of the second workload: a fleet of
// hosts reporting cpu (four cores and the total, 10 float fields each), mem
// (uint64 and float fields), disk (two mounts: uint64, float and bool
// fields and one string field) and net (two interfaces: uint64, int64 and
// bool fields), tagged with host and the input's own tags only — the
// minimal agent config, with the default template "host". 10 metrics, 96
// gauges and 2 string fields per host.
func Fleet(hosts int, at time.Time) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, hosts*FleetMetricsPerHost)
	for h := range hosts {
		out = appendFleetHost(out, h, at)
	}
	return out
}

func appendFleetHost(out []telegraf.Metric, h int, at time.Time) []telegraf.Metric {
	rng := rand.New(rand.NewPCG(uint64(at.Unix()), uint64(h)+1<<32))
	host := fmt.Sprintf("node-%03d.fleet.example.net", h)
	tags := func(kv ...string) map[string]string {
		t := map[string]string{"host": host}
		for i := 0; i+1 < len(kv); i += 2 {
			t[kv[i]] = kv[i+1]
		}
		return t
	}
	pct := func() float64 { return rng.Float64() * 100 }
	big := func(scale float64) uint64 { return uint64(rng.Float64() * scale) }

	for _, cpu := range []string{"cpu0", "cpu1", "cpu2", "cpu3", "cpu-total"} {
		out = append(out, metric.New("cpu", tags("cpu", cpu), cpuFields(pct), at))
	}

	total := uint64(64 << 30)
	avail := big(float64(total))
	out = append(out, metric.New("mem", tags(), memFields(total, avail, big), at))

	for _, d := range [...]struct{ path, device, fstype, options string }{
		{"/", "nvme0n1p1", "ext4", "rw,relatime"},
		{"/data", "nvme1n1", "xfs", "rw,noatime,attr2,inode64"},
	} {
		size := uint64(2 << 40)
		used := big(float64(size))
		out = append(out, metric.New("disk", tags("path", d.path, "device", d.device, "fstype", d.fstype), map[string]any{
			"total":        size,
			"free":         size - used,
			"used":         used,
			"used_percent": float64(used) / float64(size) * 100,
			"inodes_total": uint64(128 << 20),
			"inodes_free":  big(128 << 20),
			"inodes_used":  big(1 << 20),
			"read_only":    false,
			"options":      d.options,
		}, at))
	}

	for _, iface := range []string{"eth0", "eth1"} {
		out = append(out, metric.New("net", tags("interface", iface), map[string]any{
			"bytes_sent":   big(1e13),
			"bytes_recv":   big(1e13),
			"packets_sent": big(1e10),
			"packets_recv": big(1e10),
			"err_in":       big(10),
			"err_out":      big(10),
			"drop_in":      big(1e3),
			"drop_out":     big(1e2),
			"speed":        int64(10000),
			"up":           true,
		}, at))
	}
	return out
}

// cpuFields are inputs.cpu's fields; the random values are drawn in the
// order they are listed, so a seed gives the same workload every time.
func cpuFields(pct func() float64) map[string]any {
	return map[string]any{
		"usage_user":       pct(),
		"usage_system":     pct(),
		"usage_idle":       pct(),
		"usage_nice":       pct() / 50,
		"usage_iowait":     pct() / 20,
		"usage_irq":        0.0,
		"usage_softirq":    pct() / 30,
		"usage_steal":      pct() / 100,
		"usage_guest":      0.0,
		"usage_guest_nice": 0.0,
	}
}

// memFields are inputs.mem's fields for total bytes of which avail are free.
func memFields(total, avail uint64, big func(float64) uint64) map[string]any {
	return map[string]any{
		"total":             total,
		"available":         avail,
		"used":              total - avail,
		"free":              avail / 3,
		"cached":            avail / 2,
		"buffered":          big(1 << 28),
		"active":            big(8 << 30),
		"inactive":          big(4 << 30),
		"used_percent":      float64(total-avail) / float64(total) * 100,
		"available_percent": float64(avail) / float64(total) * 100,
	}
}
