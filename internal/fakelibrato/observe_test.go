package fakelibrato

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// TestObserve: every answered request reaches the hook once, with what it
// stored; rejected ones store nothing.
func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	s := newServer(t, Options{Observe: func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}})
	postLegacy(t, s, `{"source":"web01","measure_time":1699999990,"gauges":[{"name":"a","value":1},{"name":"b","value":2}]}`)
	postLegacy(t, s, `{"gauges":[{"name":"c d","value":1}]}`) // bad name: 400
	postTagged(t, s, `{"tags":{"host":"h"},"time":1699999990,"measurements":[{"name":"m","value":3}]}`)
	do(t, s, call{path: legacyPath, body: []byte(`{}`), user: "wrong"})

	mu.Lock()
	defer mu.Unlock()
	type summary struct {
		status                int
		gauges, measurements  int
		firstGauge, firstMeas string
	}
	var got []summary
	for _, e := range events {
		sm := summary{status: e.Status, gauges: len(e.Gauges), measurements: len(e.Measurements)}
		if len(e.Gauges) > 0 {
			sm.firstGauge = e.Gauges[0].Name + "@" + e.Gauges[0].Source
		}
		if len(e.Measurements) > 0 {
			sm.firstMeas = e.Measurements[0].Name + "@" + e.Measurements[0].Tags["host"]
		}
		got = append(got, sm)
	}
	want := []summary{
		{status: 200, gauges: 2, firstGauge: "a@web01"},
		{status: 400},
		{status: 202, measurements: 1, firstMeas: "m@h"},
		{status: 401},
	}
	if len(got) != len(want) {
		t.Fatalf("events = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !strings.Contains(string(events[1].Response), "name") {
		t.Fatalf("rejection response = %s, want the reason", events[1].Response)
	}
}

func TestListenAddr(t *testing.T) {
	probe, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	// Taken: Listen reports it instead of panicking.
	if _, err := Listen(Options{Addr: addr}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Listen on a taken address: err = %v", err)
	}
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(Options{Addr: addr, User: testUser, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.URL() != "http://"+addr {
		t.Fatalf("URL = %s, want http://%s", s.URL(), addr)
	}
	if a := postLegacy(t, s, `{"source":"s","gauges":[{"name":"a","value":1}]}`); a.status != 200 {
		t.Fatalf("status = %d, want 200", a.status)
	}
}
