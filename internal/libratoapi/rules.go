package libratoapi

import "strings"

// Limits from Librato's documentation (librato-api.md §1, §2).
const (
	// MaxTags is the most tags one tagged measurement may carry.
	MaxTags = 50
	// MaxNameLen bounds metric names and legacy sources.
	MaxNameLen = 255
	// MaxTagKeyLen and MaxTagValueLen bound tag keys and values.
	MaxTagKeyLen   = 64
	MaxTagValueLen = 255
	// A number whose base-10 exponent is above MaxExponent rejects the whole
	// request; one below MinExponent is stored as 0.
	MaxExponent = 126
	MinExponent = -130
)

// The rules below are byte loops rather than regexps: they run for every
// measurement a listener receives, and must not allocate. rules_test.go
// checks them against the documented regexps on fuzzed input.

// nameByte is the metric-name charset [-.:_A-Za-z0-9].
var nameByte = charset("-.:_")

// tagKeyByte is [-.:_\w] with ASCII \w: the same set as nameByte.
var tagKeyByte = nameByte

// tagValueByte is [-.:_?\\/\w ].
var tagValueByte = charset("-.:_?\\/ ")

// charset returns a table of ASCII letters, digits and the extra bytes.
func charset(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for i := range len(extra) {
		t[extra[i]] = true
	}
	return t
}

func allIn(s string, maxLen int, set *[256]bool) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := range len(s) {
		if !set[s[i]] {
			return false
		}
	}
	return true
}

// ValidName reports whether s matches \A[-.:_A-Za-z0-9]{1,255}\z.
func ValidName(s string) bool { return allIn(s, MaxNameLen, &nameByte) }

// ValidSource reports whether s is a legacy source Librato accepts: the
// metric-name charset, at most 255 bytes, and not the reserved "all" (in any
// case, as sources are case-insensitive).
func ValidSource(s string) bool {
	return allIn(s, MaxNameLen, &nameByte) && !strings.EqualFold(s, "all")
}

// ValidTagKey reports whether s matches \A[-.:_\w]{1,64}\z (ASCII \w).
func ValidTagKey(s string) bool { return allIn(s, MaxTagKeyLen, &tagKeyByte) }

// ValidTagValue reports whether s matches \A[-.:_?\\/\w ]{1,255}\z.
func ValidTagValue(s string) bool { return allIn(s, MaxTagValueLen, &tagValueByte) }
