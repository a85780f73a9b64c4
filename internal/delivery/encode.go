package delivery

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Names and legacy sources are appended without escaping: the converter
// only produces them from [-.A-Za-z0-9_] (sanitizeName, shorten and the
// validated default_source), which JSON never escapes. Tags, which may hold
// any character Librato allows, are escaped once per tag set.

// EncodeLegacy appends the /v1/metrics body for pts:
// {"gauges":[{"name":…,"source":…,"value":…,"measure_time":…},…]}.
func EncodeLegacy(buf []byte, pts []Measurement) []byte {
	var times timeDigits
	buf = append(buf, `{"gauges":[`...)
	for i := range pts {
		if i > 0 {
			buf = append(buf, ',')
		}
		p := &pts[i]
		buf = append(buf, `{"name":"`...)
		buf = append(buf, p.Name...)
		buf = append(buf, `","source":"`...)
		buf = append(buf, p.Series.Source...)
		buf = append(buf, '"')
		if p.Summary != nil {
			buf = appendLegacySummary(buf, p.Summary)
		} else {
			buf = append(buf, `,"value":`...)
			buf = appendFloat(buf, p.Value)
		}
		buf = append(buf, `,"measure_time":`...)
		buf = times.append(buf, p.Time)
		buf = append(buf, '}')
	}
	return append(buf, "]}"...)
}

// timeDigits remembers the last time formatted: the points of a flush mostly
// share a handful of timestamps.
type timeDigits struct {
	t      int64
	n      int
	digits [20]byte
}

func (d *timeDigits) append(buf []byte, t int64) []byte {
	if d.n == 0 || d.t != t {
		d.t, d.n = t, len(strconv.AppendInt(d.digits[:0], t, 10))
	}
	return append(buf, d.digits[:d.n]...)
}

func appendLegacySummary(buf []byte, s *Summary) []byte {
	buf = append(buf, `,"count":`...)
	buf = strconv.AppendInt(buf, s.Count, 10)
	buf = append(buf, `,"sum":`...)
	buf = appendFloat(buf, s.Sum)
	buf = appendOptional(buf, `,"min":`, s.Min, s.HasMin)
	buf = appendOptional(buf, `,"max":`, s.Max, s.HasMax)
	return appendOptional(buf, `,"sum_squares":`, s.SumSquares, s.HasSumSq)
}

// EncodeTagged appends the /v1/measurements body for pts. Per-measurement
// tags replace the top-level ones, so the first point's tags go to the top
// level and only points of other tag sets carry their own: Telegraf metrics
// have several fields each, and consecutive points mostly share tags.
func EncodeTagged(buf []byte, pts []Measurement) []byte {
	var common string
	if len(pts) > 0 {
		common = pts[0].Series.Tags
	}
	var times timeDigits
	buf = append(buf, `{"tags":`...)
	buf = append(buf, common...)
	buf = append(buf, `,"measurements":[`...)
	for i := range pts {
		if i > 0 {
			buf = append(buf, ',')
		}
		p := &pts[i]
		buf = append(buf, `{"name":"`...)
		buf = append(buf, p.Name...)
		buf = append(buf, '"')
		if p.Series.Tags != common {
			buf = append(buf, `,"tags":`...)
			buf = append(buf, p.Series.Tags...)
		}
		if p.Summary != nil {
			buf = appendTaggedSummary(buf, p.Summary)
		} else {
			buf = append(buf, `,"value":`...)
			buf = appendFloat(buf, p.Value)
		}
		buf = append(buf, `,"time":`...)
		buf = times.append(buf, p.Time)
		buf = append(buf, '}')
	}
	return append(buf, "]}"...)
}

func appendTaggedSummary(buf []byte, s *Summary) []byte {
	buf = append(buf, `,"count":`...)
	buf = strconv.AppendInt(buf, s.Count, 10)
	buf = append(buf, `,"sum":`...)
	buf = appendFloat(buf, s.Sum)
	buf = appendOptional(buf, `,"min":`, s.Min, s.HasMin)
	buf = appendOptional(buf, `,"max":`, s.Max, s.HasMax)
	return appendOptional(buf, `,"stddev":`, s.Std, s.HasStd)
}

func appendOptional(buf []byte, key string, v float64, ok bool) []byte {
	if !ok {
		return buf
	}
	return appendFloat(append(buf, key...), v)
}

// AppendTagObject appends {"k":"v",…}.
func AppendTagObject(buf []byte, pairs [][2]string) []byte {
	buf = append(buf, '{')
	for i, kv := range pairs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, kv[0])
		buf = append(buf, ':')
		buf = appendString(buf, kv[1])
	}
	return append(buf, '}')
}

// encodedSize estimates a point's share of a request body, to keep bodies
// under Librato's size limit without encoding twice.
func encodedSize(p *Measurement) int {
	n := len(p.Name) + len(p.Series.Source) + len(p.Series.Tags) + 80
	if p.Summary != nil {
		n += 120
	}
	return n
}

// estimatedBody is the buffer size to start a body for pts with.
func estimatedBody(pts []Measurement) int {
	n := 64
	for i := range pts {
		n += encodedSize(&pts[i])
	}
	return n
}

// appendFloat formats v as encoding/json does (the built-in plugin's
// format), so the bodies of both plugins carry the same digits. v must be
// finite: the converter never lets NaN or ±Inf through, and this writes 0
// for them rather than invalid JSON.
func appendFloat(buf []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(buf, '0')
	}
	// Whole numbers (counters, bytes, booleans) are the common case; below
	// 2^53 their shortest form is their integer digits. -0 keeps its sign.
	if i := int64(v); float64(i) == v && i > -1<<53 && i < 1<<53 && (i != 0 || !math.Signbit(v)) {
		return strconv.AppendInt(buf, i, 10)
	}
	abs := math.Abs(v)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, v, format, -1, 64)
	if format == 'e' {
		// Turn e-09 into e-9, as encoding/json does.
		n := len(buf)
		if n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so
// the output is valid JSON for any input.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, width := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && width == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += width
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
