package librato

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// TestLocalDropsReportedOncePerDelivery: a failed Write's metrics come back
// in Telegraf's retry, so what their conversion dropped is logged and
// counted when a Write delivers them, once, not at every try.
func TestLocalDropsReportedOncePerDelivery(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	fake.SetFault(func(int, *fakelibrato.Received) fakelibrato.Action {
		return fakelibrato.Action{Status: http.StatusServiceUnavailable}
	})
	l, logger := debugPlugin(t, fake.LegacyURL(), func(l *Librato) { l.RetryBudget = 0 })
	metrics, want := workload(10)
	metrics = append(metrics, metric.New("bad", map[string]string{"host": "h"}, map[string]any{"v": math.NaN()}, time.Now()))

	require.Error(t, l.Write(metrics))
	require.Error(t, l.Write(metrics))
	require.Zero(t, l.stats.dropped[reasonInvalidValue].Get(), "not yet: the metrics come back")
	require.NotContains(t, logText(logger), "invalid_value")

	fake.SetFault(nil)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnce(t, fake, want)
	require.Equal(t, int64(1), l.stats.dropped[reasonInvalidValue].Get())
	text := logText(logger)
	require.Equal(t, 1, strings.Count(text, "Dropped 1 measurement(s) (invalid_value)"), text)
	require.Equal(t, 1, strings.Count(text, "Skipping bad.v"), "the debug line too, once")
}

// TestDropDetailsAreBounded: a flush of many bad values keeps at most
// maxDropDetails debug lines until it is reported; the warning has the count.
func TestDropDetailsAreBounded(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l, logger := debugPlugin(t, fake.LegacyURL())
	metrics, _ := workload(10)
	for i := range 1000 {
		metrics = append(metrics, metric.New("bad", map[string]string{"host": "h"},
			map[string]any{"v": math.Inf(1)}, time.Now().Add(-time.Duration(i)*time.Second)))
	}
	require.NoError(t, l.Write(metrics))
	text := logText(logger)
	require.Equal(t, maxDropDetails, strings.Count(text, "Skipping bad.v"))
	require.Contains(t, text, "Skipping 900 more")
	require.Contains(t, text, "Dropped 1000 measurement(s) (invalid_value)")
	require.Equal(t, int64(1000), l.stats.dropped[reasonInvalidValue].Get())
}
