package librato

import (
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
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
	tagValue := regexp.MustCompile(`\A[-.:?\\/\w ]*\z`) // \w includes _
	tagName := regexp.MustCompile(`\A[-.:\w]*\z`)
	f.Fuzz(func(t *testing.T, s string) {
		require.Regexp(t, tagValue, sanitizeTag(s, isTagValueByte))
		require.Regexp(t, tagName, sanitizeTag(s, isTagNameByte))
		require.Len(t, sanitizeTag(s, isTagValueByte), utf8.RuneCountInString(s))
	})
}

// FuzzConvertEncode feeds any metric through the converter and both
// encoders: the body is always valid JSON, and every name, source and tag in
// it follows Librato's rules, so no input can make Librato reject a request.
func FuzzConvertEncode(f *testing.F) {
	f.Add("cpu", "host", "web01", "usage_idle", 1.5, int64(1790000000), false)
	f.Add("a b\x00\"", "\xff", "</script>", "value", math.Copysign(0, -1), int64(-1), true)
	f.Add("ünï:code", "tag key", "v?a\\l/ue", "f", 1e-7, int64(1<<40), true)
	f.Add(strings.Repeat("n", 300), strings.Repeat("k", 70), strings.Repeat("v", 300), "x", 1e126, int64(1), false)
	name := regexp.MustCompile(`\A[-.:_A-Za-z0-9]{1,255}\z`)
	tagName := regexp.MustCompile(`\A[-.:\w]{1,64}\z`)
	tagValue := regexp.MustCompile(`\A[-.:?\\/\w ]{1,255}\z`)
	f.Fuzz(func(t *testing.T, measurement, tagKey, tagValue_, field string, v float64, ts int64, tagged bool) {
		m := metric.New(measurement, map[string]string{tagKey: tagValue_, "host": tagValue_}, map[string]any{field: v, "n": ts}, time.Unix(ts, 0))
		c, err := newConverter(converterConfig{tagged: tagged, template: "host.tags"}, newStats("fuzz"), testutil.Logger{Quiet: true})
		require.NoError(t, err)
		pts := c.convert([]telegraf.Metric{m})
		if len(pts) == 0 {
			return
		}
		body := encodeLegacy(nil, pts)
		if tagged {
			body = encodeTagged(nil, pts)
		}
		var doc struct {
			Tags         map[string]string
			Gauges       []struct{ Name, Source string }
			Measurements []struct {
				Name string
				Tags map[string]string
			}
		}
		require.NoError(t, json.Unmarshal(body, &doc), "invalid JSON: %q", body)
		for _, g := range doc.Gauges {
			require.Regexp(t, name, g.Name)
			require.Regexp(t, name, g.Source)
		}
		for _, ms := range doc.Measurements {
			require.Regexp(t, name, ms.Name)
			tags := doc.Tags
			if ms.Tags != nil {
				tags = ms.Tags
			}
			require.NotEmpty(t, tags)
			require.LessOrEqual(t, len(tags), maxTags)
			for k, v := range tags {
				require.Regexp(t, tagName, k)
				require.Regexp(t, tagValue, v)
			}
		}
	})
}
