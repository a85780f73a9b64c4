package libratoapi

import (
	"math"
	"strconv"
)

// numState classifies a number literal against Librato's range rules.
type numState uint8

const (
	numOK   numState = iota
	numBad           // not a JSON number literal
	numHuge          // base-10 exponent above MaxExponent
)

// parseNumber parses a JSON number literal the way Librato judges it: on
// the text, so exponents beyond float64's range are still classified, and
// magnitudes below 10^MinExponent become 0.
func parseNumber(lit []byte) (float64, numState) {
	if !validNumber(lit) {
		return 0, numBad
	}
	exp, zero := exponent10(lit)
	switch {
	case zero || exp < MinExponent:
		return 0, numOK
	case exp > MaxExponent:
		return 0, numHuge
	}
	// string(lit) does not escape ParseFloat's error path (it clones), so
	// short literals are converted on the stack.
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, numBad
	}
	return f, numOK
}

// parseInteger accepts only integral literals ("60", not "60.0" or "6e1"),
// because Librato documents count and times as integers.
func parseInteger(lit []byte) (int64, bool) {
	if !validNumber(lit) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	return n, err == nil
}

// validNumber reports whether b is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(b)
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// exponent10 returns the base-10 exponent of a valid number literal in
// normalised scientific notation (1.5e3 -> 3, 0.01 -> -2), or zero=true when
// the literal is a zero.
func exponent10(lit []byte) (exp int, zero bool) {
	i := 0
	if i < len(lit) && (lit[i] == '-' || lit[i] == '+') {
		i++
	}
	intStart := i
	i = digits(lit, i)
	intPart := lit[intStart:i]
	var frac []byte
	if i < len(lit) && lit[i] == '.' {
		j := i + 1
		i = digits(lit, j)
		frac = lit[j:i]
	}
	lead := 0
	switch k, j := firstNonZero(intPart), firstNonZero(frac); {
	case k >= 0:
		lead = len(intPart) - 1 - k
	case j >= 0:
		lead = -(j + 1)
	default:
		return 0, true
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		// lead is bounded by the body size and parseExp by ±2^30: no overflow.
		return lead + parseExp(lit[i+1:]), false
	}
	return lead, false
}

func firstNonZero(b []byte) int {
	for i, c := range b {
		if c >= '1' && c <= '9' {
			return i
		}
	}
	return -1
}

// parseExp reads an exponent, saturating at ±2^30 instead of overflowing so
// absurd literals like 1e99999999999999999999 are still classified.
func parseExp(b []byte) int {
	const limit = 1 << 30
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	e := 0
	for _, c := range b {
		e = e*10 + int(c-'0')
		if e > limit {
			e = limit
			break
		}
	}
	if neg {
		return -e
	}
	return e
}
