package fakelibrato

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The stored view keeps the last value per series and second, as Librato
// does, while Gauges keeps every arrival for exactly-once assertions.
func TestStoredViewsMergeAsLibrato(t *testing.T) {
	s := New(Options{User: "u", Token: "t"})
	defer s.Close()
	post := func(path, body string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.URL()+path, bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		req.SetBasicAuth("u", "t")
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 2, resp.StatusCode/100)
	}
	post(legacyPath, `{"measure_time":1700000000,"gauges":[
		{"name":"disk.free","source":"vm","value":1},
		{"name":"disk.free","source":"VM","value":2},
		{"name":"disk.free","source":"web","value":3}]}`)
	post(legacyPath, `{"measure_time":1700000000,"gauges":[{"name":"disk.free","source":"vm","value":4}]}`)
	post(taggedPath, `{"time":1700000000,"measurements":[
		{"name":"cpu","tags":{"host":"a"},"value":1},
		{"name":"cpu","tags":{"host":"A"},"value":2},
		{"name":"cpu","tags":{"host":"b"},"value":3}]}`)

	require.Len(t, s.Gauges(), 4, "every arrival stays recorded")
	require.Equal(t, 2, s.CountGauge("disk.free", "vm", 1700000000))
	stored := s.StoredGauges()
	require.Len(t, stored, 2)
	require.InDelta(t, 4.0, stored[0].Value, 0, "the last value of the series wins")
	require.Equal(t, "web", stored[1].Source)

	require.Len(t, s.Measurements(), 3)
	ms := s.StoredMeasurements()
	require.Len(t, ms, 2)
	require.InDelta(t, 2.0, ms[0].Value, 0)
}

func TestSeriesAddAndForget(t *testing.T) {
	var s Series
	a := Gauge{Name: "x", Source: "s", MeasureTime: 10}
	require.False(t, s.Add(a.SeriesKey(), 10))
	require.True(t, s.Add(Gauge{Name: "X", Source: "S", MeasureTime: 10}.SeriesKey(), 10))
	require.False(t, s.Add(Gauge{Name: "x", Source: "s", MeasureTime: 11}.SeriesKey(), 11))
	s.Forget(11)
	require.Equal(t, 1, s.Len())
	require.False(t, s.Add(a.SeriesKey(), 10), "forgotten")
}
