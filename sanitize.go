package librato

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"unicode/utf8"
)

// Librato's length limits (see shared/librato-api.md).
const (
	maxNameLen     = 255
	maxSourceLen   = 255
	maxTagNameLen  = 64
	maxTagValueLen = 255
	maxTags        = 50

	// Librato rejects a whole request for a base-10 exponent above 126 and
	// silently stores 0 below -130; we skip both rather than lose a flush or
	// store a value the metric never had.
	maxAbsValue = 1e127
	minAbsValue = 1e-130
)

// sanitizeName maps every character Telegraf's built-in plugin rejects
// ([^.a-zA-Z0-9_-]) to '-', one '-' per rune as a regexp replacement would
// do (an invalid UTF-8 byte counts as one rune). Names and sources must stay
// byte-identical to the built-in plugin's, so ':' is replaced too although
// Librato would accept it.
func sanitizeName(s string) string {
	if isCleanName(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if isNameByte(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('-')
			}
			i++
			continue
		}
		_, width := utf8.DecodeRuneInString(s[i:])
		b.WriteByte('-')
		i += width
	}
	return b.String()
}

func isCleanName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// isTagNameByte follows Librato's tag name rule [-.:_\w].
func isTagNameByte(c byte) bool {
	return isNameByte(c) || c == ':'
}

// isTagValueByte follows Librato's tag value rule [-.:_?\\/\w ].
func isTagValueByte(c byte) bool {
	return isTagNameByte(c) || c == '?' || c == '\\' || c == '/' || c == ' '
}

// sanitizeTag replaces every rune outside the allowed set with '_'.
func sanitizeTag(s string, allowed func(byte) bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		width := 1
		if c >= utf8.RuneSelf {
			_, width = utf8.DecodeRuneInString(s[i:])
		}
		if width == 1 && allowed(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
		i += width
	}
	return b.String()
}

// hashSuffixLen is the length of the "-<hex>" suffix of a shortened string:
// 64 bits of SHA-256, so two different long inputs collide only with
// probability ~2^-64.
const hashSuffixLen = 1 + 16

// shorten cuts s to at most limit bytes. Longer strings keep a readable
// prefix and end in a hash of the whole input, so the result is
// deterministic and different long inputs give different results.
func shorten(s string, limit int) (string, bool) {
	if len(s) <= limit {
		return s, false
	}
	sum := sha256.Sum256([]byte(s))
	return s[:limit-hashSuffixLen] + "-" + hex.EncodeToString(sum[:8]), true
}

// valueProblem says why Librato cannot take v, or "" if it can.
func valueProblem(v float64) (dropReason, string) {
	if a := math.Abs(v); a < maxAbsValue && (a >= minAbsValue || a == 0) {
		return 0, "" // the common case in one test; false for NaN
	}
	switch {
	case math.IsNaN(v):
		return reasonInvalidValue, "value is NaN"
	case math.IsInf(v, 0):
		return reasonInvalidValue, "value is infinite"
	case math.Abs(v) >= maxAbsValue:
		return reasonOutOfRange, "value exceeds Librato's limit of 1e127"
	case v != 0 && math.Abs(v) < minAbsValue:
		return reasonOutOfRange, "value is below Librato's limit of 1e-130"
	}
	return 0, ""
}
