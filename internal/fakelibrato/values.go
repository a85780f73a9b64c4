package fakelibrato

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// metricNameRe is Librato's metric (and legacy source) charset; both APIs
// share it, see the shared API notes.
var metricNameRe = regexp.MustCompile(`\A[-.:_A-Za-z0-9]{1,255}\z`)

// Librato rejects a whole request when any number has a base-10 exponent
// above maxExponent and silently stores numbers below 10^minExponent as 0.
const (
	maxExponent = 126
	minExponent = -130
)

// apiError is a complete error answer: status plus a JSON-encodable body.
type apiError struct {
	status int
	body   any
}

// fieldError is one per-field validation failure, later wrapped into the
// endpoint-specific error shape together with the metric name.
type fieldError struct {
	field, msg string
	// tooOld marks "is too far in the past", which Librato answers with an
	// extra top-level request_time.
	tooOld bool
}

// checker keeps the first validation failure only: Librato reports one
// problem per request, and callers keep converting best-effort so the fault
// hook still sees every entry.
type checker struct{ err *fieldError }

func (c *checker) fail(field, msg string) {
	if c.err == nil {
		c.err = &fieldError{field: field, msg: msg}
	}
}

func (c *checker) failTooOld(field string) {
	if c.err == nil {
		c.err = &fieldError{field: field, msg: "is too far in the past", tooOld: true}
	}
}

func requestError(status int, msg string) *apiError {
	return &apiError{status: status, body: map[string]any{
		"errors": map[string]any{"request": []string{msg}},
	}}
}

var (
	errTooLarge   = requestError(http.StatusRequestEntityTooLarge, "request body too large")
	errBadGzip    = requestError(http.StatusBadRequest, "The gzip body could not be decoded")
	errMediaType  = requestError(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	errEncoding   = requestError(http.StatusUnsupportedMediaType, "Content-Encoding not supported")
	errNotFound   = requestError(http.StatusNotFound, "not found")
	errAuth       = requestError(http.StatusUnauthorized, "Credentials are required to access this resource.")
	errHTTPS      = requestError(http.StatusForbidden, "Please use secured connection through https!")
	errLegacyJSON = requestError(http.StatusBadRequest, "The JSON could not be parsed")
	errReadBody   = requestError(http.StatusBadRequest, "the request body could not be read")
)

var errTrailingData = errors.New("trailing data after JSON value")

// decodeJSON parses exactly one JSON value. Numbers stay json.Number so the
// validators can check integer-ness and exponents on the literal text, which
// float64 would already have rounded away.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailingData
	}
	return v, nil
}

// present reports whether key is set to something other than JSON null;
// null is treated like an absent optional parameter.
func present(m map[string]any, key string) bool {
	v, ok := m[key]
	return ok && v != nil
}

// number validates a numeric field per Librato's range rules and returns its
// value; tiny magnitudes are flushed to 0 as the real service does.
func number(c *checker, field string, raw any) float64 {
	n, ok := raw.(json.Number)
	if !ok {
		c.fail(field, "is not a number")
		return 0
	}
	exp, zero := exponent10(string(n))
	switch {
	case zero || exp < minExponent:
		return 0
	case exp > maxExponent:
		c.fail(field, "is out of range (base-10 exponent above 126)")
		return 0
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		c.fail(field, "is not a number")
		return 0
	}
	return f
}

// optionalNumber is number for fields that may be absent; has reports
// presence so callers can distinguish "missing" from "0".
func optionalNumber(c *checker, m map[string]any, field string) (v float64, has bool) {
	if !present(m, field) {
		return 0, false
	}
	return number(c, field, m[field]), true
}

// integer accepts only integral JSON literals ("60", not "60.0" or "6e1"),
// because Librato documents these fields as integers.
func integer(c *checker, field string, raw any) (int64, bool) {
	n, ok := raw.(json.Number)
	if !ok {
		c.fail(field, "is not an integer")
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		c.fail(field, "is not an integer")
		return 0, false
	}
	return i, true
}

// exponent10 returns the base-10 exponent of lit in normalised scientific
// notation (1.5e3 -> 3, 0.01 -> -2), or zero=true when lit is a zero.
// It works on the text so values beyond float64 range are still measured.
func exponent10(lit string) (exp int, zero bool) {
	lit = strings.TrimLeft(lit, "+-")
	mant, expPart, _ := strings.Cut(strings.ToLower(lit), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	lead := -1
	if i := strings.IndexFunc(intPart, nonZeroDigit); i >= 0 {
		lead = len(intPart) - 1 - i
	} else if j := strings.IndexFunc(frac, nonZeroDigit); j >= 0 {
		lead = -(j + 1)
	} else {
		return 0, true
	}
	// lead is bounded by the body size and parseExp by ±2^30: no overflow.
	return lead + parseExp(expPart), false
}

func nonZeroDigit(r rune) bool { return r >= '1' && r <= '9' }

// parseExp reads an exponent, saturating instead of overflowing so absurd
// literals like 1e99999999999999999999 are still classified correctly.
func parseExp(s string) int {
	const limit = 1 << 30
	e, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			if strings.HasPrefix(s, "-") {
				return -limit
			}
			return limit
		}
		return 0
	}
	return int(max(min(e, limit), -limit))
}
