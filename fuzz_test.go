package librato

import (
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// builtinReplace is the built-in plugin's sanitisation rule, the reference
// sanitizeName must match byte for byte.
var builtinReplace = regexp.MustCompile("[^.a-zA-Z0-9_-]")

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"", "cpu.usage", "a b:c", "ünï", "\xff\xfe", "tab\tx", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		require.Equal(t, builtinReplace.ReplaceAllString(s, "-"), sanitizeName(s))
		short, _ := shorten(sanitizeName(s), maxNameLen)
		require.LessOrEqual(t, len(short), maxNameLen)
		require.True(t, isCleanName(short))
	})
}

func FuzzSanitizeTag(f *testing.F) {
	for _, s := range []string{"", "host", "a b/c?d\\e", "ünï", "\xff", "x:y.z-_"} {
		f.Add(s)
	}
	tagValue := regexp.MustCompile(`\A[-.:_?\\/\w ]*\z`)
	tagName := regexp.MustCompile(`\A[-.:_\w]*\z`)
	f.Fuzz(func(t *testing.T, s string) {
		require.Regexp(t, tagValue, sanitizeTag(s, isTagValueByte))
		require.Regexp(t, tagName, sanitizeTag(s, isTagNameByte))
		require.Equal(t, utf8.RuneCountInString(s), len(sanitizeTag(s, isTagValueByte)))
	})
}

// FuzzEncode checks that any point encodes to valid JSON that decodes back
// to what was encoded, in both API shapes.
func FuzzEncode(f *testing.F) {
	f.Add("cpu.usage", "web01", "k", "v", 1.5, int64(1790000000), int64(0))
	f.Add("\x00\"\\", "\xff", "\u2028", "</script>", -0.0, int64(-1), int64(3))
	f.Add("n", "s", "k", "v", 1e-7, int64(math.MaxInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, name, source, key, value string, v float64, ts, count int64) {
		s := &series{source: source, tags: string(appendTagObject(nil, [][2]string{{key, value}}))}
		p := point{name: name, series: s, time: ts, value: v}
		if count > 0 {
			p.summary = summary{count: count, sum: v, min: v, hasMin: true, std: v, hasStd: true, sumSquares: v, hasSumSq: true}
		}
		for _, body := range [][]byte{encodeLegacy(nil, []point{p, p}), encodeTagged(nil, []point{p})} {
			var doc map[string]any
			require.NoError(t, json.Unmarshal(body, &doc), "invalid JSON: %q", body)
		}
		var legacy struct {
			Gauges []struct {
				Name, Source string
				Value        *float64
				MeasureTime  int64 `json:"measure_time"`
			}
		}
		require.NoError(t, json.Unmarshal(encodeLegacy(nil, []point{p}), &legacy))
		g := legacy.Gauges[0]
		require.Equal(t, viaEncodingJSON(t, name), g.Name)
		require.Equal(t, viaEncodingJSON(t, source), g.Source)
		require.Equal(t, ts, g.MeasureTime)
		if count == 0 && !math.IsNaN(v) && !math.IsInf(v, 0) {
			require.NotNil(t, g.Value)
			require.Equal(t, v, *g.Value)
		}
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
	for _, v := range []float64{0, -0.0, 1, 1e-6, 9.99e-7, 1e20, 1e21, 123.456, math.MaxFloat64, math.SmallestNonzeroFloat64} {
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
