package librato

import (
	"hash/maphash"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// TestLedgerKeySameForBothAPIs: converters sharing a seed give every
// measurement the same ledger key in both APIs, so that a switch of API in
// the middle of a flush skips what the other one stored; different tag sets
// keep different keys, also when the tags are too large for the series
// cache.
func TestLedgerKeySameForBothAPIs(t *testing.T) {
	seed := maphash.MakeSeed()
	ts := time.Unix(1_700_000_000, 0)
	big := strings.Repeat("x", maxCachedEntryBytes)
	metrics := []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "a", "cpu": "0"}, map[string]any{"idle": 1.0, "user": 2.0}, ts),
		metric.New("cpu", map[string]string{"host": "a", "cpu": "1"}, map[string]any{"idle": 1.0, "user": 2.0}, ts),
		metric.New("cpu", map[string]string{"host": "a", "big": big}, map[string]any{"idle": 1.0}, ts),
		metric.New("cpu", map[string]string{"host": "a", "big": big + "y"}, map[string]any{"idle": 1.0}, ts),
	}
	keys := func(tagged bool) []uint64 {
		c, err := newConverter(converterConfig{tagged: tagged, template: "host", tagSeed: seed},
			newStats("test"), testutil.Logger{Quiet: true})
		require.NoError(t, err)
		var led ledger
		led.seed = seed
		out := make([]uint64, 0, 2*len(metrics))
		for _, p := range c.convert(metrics) {
			out = append(out, led.key(&p))
		}
		return out
	}
	legacy, tagged := keys(false), keys(true)
	require.Len(t, legacy, 6)
	require.Equal(t, legacy, tagged)
	distinct := map[uint64]bool{}
	for _, k := range legacy {
		distinct[k] = true
	}
	require.Len(t, distinct, 6, "the legacy sources are equal, the tag sets are not")
}
