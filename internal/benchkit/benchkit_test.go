package benchkit

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWorkload(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	ms := Workload(Hosts, at)
	if len(ms) != Hosts*MetricsPerHost {
		t.Fatalf("got %d metrics, want %d", len(ms), Hosts*MetricsPerHost)
	}
	if got := Gauges(ms); got != 9000 {
		t.Errorf("got %d gauges, want 9000", got)
	}
	hosts := map[string]bool{}
	for _, m := range ms {
		for _, tag := range []string{"host", "region", "dc"} {
			if !m.HasTag(tag) {
				t.Fatalf("%s metric without %s tag", m.Name(), tag)
			}
		}
		if !m.Time().Equal(at) {
			t.Fatalf("metric time %s, want %s", m.Time(), at)
		}
		h, _ := m.GetTag("host")
		hosts[h] = true
	}
	if len(hosts) != Hosts {
		t.Errorf("%d distinct hosts, want %d", len(hosts), Hosts)
	}

	later := Shift(ms, Interval)
	if !later[0].Time().Equal(at.Add(Interval)) || !ms[0].Time().Equal(at) {
		t.Error("Shift must move the copies and leave the originals")
	}
	if got := len(Intervals(2, 3, at)); got != 2*MetricsPerHost*3 {
		t.Errorf("Intervals: got %d metrics, want %d", got, 2*MetricsPerHost*3)
	}
}

func TestSink(t *testing.T) {
	s := NewSink()
	defer s.Close()
	resp, err := http.Post(s.URL(), "application/json", strings.NewReader(`{"gauges":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || s.Requests() != 1 || s.Bytes() != 13 {
		t.Errorf("status %d, %d requests, %d bytes; want 200, 1, 13", resp.StatusCode, s.Requests(), s.Bytes())
	}
	s.Reset()
	if s.Requests() != 0 || s.Bytes() != 0 {
		t.Error("Reset must zero the counters")
	}
}

func TestFleet(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	ms := Fleet(Hosts, at)
	if len(ms) != Hosts*FleetMetricsPerHost {
		t.Fatalf("got %d metrics, want %d", len(ms), Hosts*FleetMetricsPerHost)
	}
	if got := Gauges(ms); got != 9600 {
		t.Errorf("got %d gauges, want 9600", got)
	}
	types := map[string]int{}
	names := map[string]int{}
	for _, m := range ms {
		names[m.Name()]++
		if _, ok := m.GetTag("host"); !ok {
			t.Fatalf("%s metric without host tag", m.Name())
		}
		for _, f := range m.FieldList() {
			switch f.Value.(type) {
			case float64:
				types["float"]++
			case int64:
				types["int64"]++
			case uint64:
				types["uint64"]++
			case bool:
				types["bool"]++
			case string:
				types["string"]++
				if m.Name() != "disk" {
					t.Errorf("string field %s on %s", f.Key, m.Name())
				}
			}
		}
	}
	for _, typ := range []string{"float", "int64", "uint64", "bool"} {
		if types[typ] == 0 {
			t.Errorf("no %s field", typ)
		}
	}
	if types["string"] != names["disk"] {
		t.Errorf("%d string fields for %d disk metrics, want one each", types["string"], names["disk"])
	}
	if len(names) != 4 || names["cpu"] == 0 || names["mem"] == 0 || names["disk"] == 0 || names["net"] == 0 {
		t.Errorf("measurements %v, want cpu, mem, disk, net", names)
	}
}

func TestPool(t *testing.T) {
	a := JobResult{Batches: []Batch{{CPU: 1, Gauges: 10}, {CPU: 2, Gauges: 10}}, EncodeCPU: 5, EncodeGauges: 20, BodyBytes: 100, Requests: 2}
	b := JobResult{Batches: []Batch{{CPU: 3, Gauges: 10}, {CPU: 4, Gauges: 10}}, EncodeCPU: 7, EncodeGauges: 20, BodyBytes: 50, Requests: 2, Err: "boom"}
	p := Pool([]JobResult{a, b})
	if p.Rounds != 2 || len(p.Batches) != 4 || p.Batches[2].CPU != 3 {
		t.Fatalf("rounds %d, batches %v: want 2 rounds, a's batches then b's", p.Rounds, p.Batches)
	}
	if p.EncodeCPU != 12 || p.EncodeGauges != 40 || p.BodyBytes != 150 || p.Requests != 4 {
		t.Errorf("floor figures not summed: %+v", p)
	}
	if p.Err != "boom" {
		t.Errorf("a round's error must survive pooling, got %q", p.Err)
	}
	if len(a.Batches) != 2 {
		t.Error("Pool must not change its input")
	}
	if Pool(nil).Rounds != 0 {
		t.Error("nothing pooled is no rounds")
	}
}
