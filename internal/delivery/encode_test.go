package delivery

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzAppendString: any string is encoded as encoding/json would decode it
// back.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "\x00\"\\", "\xff\xfe", "\u2028", "tab\tnew\nline"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var out string
		require.NoError(t, json.Unmarshal(appendString(nil, s), &out))
		require.Equal(t, viaEncodingJSON(t, s), out)
	})
}

// viaEncodingJSON is what encoding/json makes of s: invalid UTF-8 bytes
// become one U+FFFD each.
func viaEncodingJSON(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var out string
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// FuzzFloatFormat pins appendFloat to encoding/json's output, which is what
// the built-in plugin sends.
func FuzzFloatFormat(f *testing.F) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, 1e-6, 9.99e-7, 1e20, 1e21, 123.456, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		want, err := json.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendFloat(nil, v)))
	})
}
