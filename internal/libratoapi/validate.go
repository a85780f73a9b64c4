package libratoapi

import (
	"math"
	"strconv"
	"time"
)

// Window bounds measurement times relative to now. Librato documents no
// window (librato-api.md §1: "too far in the past" was observed with
// conflicting ages), so both bounds are off when zero.
type Window struct {
	MaxAge, MaxFuture time.Duration
}

// FieldError is the first rule one measurement breaks. Librato reports a
// single problem per request, naming the field.
type FieldError struct {
	Field, Message string
	// TooOld marks "is too far in the past", which Librato answers with a
	// top-level request_time (the server's clock, RequestTime).
	TooOld      bool
	RequestTime int64
}

func (e *FieldError) Error() string { return e.Field + " " + e.Message }

// Messages Librato answers with (librato-api.md §1, §2 and observed errors).
const (
	msgRequired   = "is required"
	msgInvalid    = "is invalid"
	msgNotNumber  = "is not a number"
	msgNotInteger = "is not an integer"
	msgOutOfRange = "is out of range (base-10 exponent above 126)"
	msgPositive   = "must be positive"
	msgTooOld     = "is too far in the past"
	msgTooNew     = "is too far in the future"
	msgNoValueMix = "must not be present when count is given"
	msgTagsNeeded = "are required"
	// MsgNoMeasurements is the answer to a request without measurements.
	MsgNoMeasurements = "must have at least one measurement"
)

// hugeValue is 10^(MaxExponent+1): a float at or above it has a base-10
// exponent above MaxExponent. Decoders judge the literal text instead, so
// this only matters for measurements built by hand.
const hugeValue = 1e127

// tinyValue is 10^MinExponent; smaller magnitudes are stored as 0.
const tinyValue = 1e-130

// Validate applies Librato's rules to one measurement, in the order Librato
// checks fields, and returns the first problem or nil. It also applies the
// one rule that changes data rather than rejecting it: magnitudes below
// 10^MinExponent become 0. It allocates only when it returns an error.
func Validate(m *Measurement, now time.Time, w Window) *FieldError {
	if m.Kind == Tagged {
		return validateTagged(m, now, w)
	}
	if fe := checkName(m); fe != nil {
		return fe
	}
	if (m.given&fSource != 0 || m.Source != "") && (m.bad&fSource != 0 || !ValidSource(m.Source)) {
		return &FieldError{Field: "source", Message: m.Source + " is not a valid source name"}
	}
	if fe := checkTime(m, "measure_time", now, w); fe != nil {
		return fe
	}
	switch {
	case m.Kind == Counter:
		if !m.HasValue {
			return &FieldError{Field: "value", Message: msgRequired}
		}
		if fe := checkNumber(m, fValue, &m.Value); fe != nil {
			return fe
		}
		if m.Value < 0 {
			return &FieldError{Field: "value", Message: msgPositive}
		}
		return nil
	case m.HasCount:
		return checkSummary(m)
	case m.HasValue:
		return checkNumber(m, fValue, &m.Value)
	default:
		return &FieldError{Field: "value", Message: msgRequired}
	}
}

func validateTagged(m *Measurement, now time.Time, w Window) *FieldError {
	if fe := checkName(m); fe != nil {
		return fe
	}
	if fe := checkTags(m.Tags); fe != nil {
		return fe
	}
	var fe *FieldError
	switch {
	case m.HasCount:
		fe = checkSummary(m)
	case m.HasValue:
		fe = checkNumber(m, fValue, &m.Value)
	default:
		fe = &FieldError{Field: "value", Message: msgRequired}
	}
	if fe != nil {
		return fe
	}
	return checkTime(m, "time", now, w)
}

func checkName(m *Measurement) *FieldError {
	switch {
	case m.bad&fName != 0:
		return &FieldError{Field: "name", Message: msgInvalid}
	case m.Name == "":
		return &FieldError{Field: "name", Message: msgRequired}
	case !ValidName(m.Name):
		return &FieldError{Field: "name", Message: m.Name + " is not a valid metric name"}
	}
	return nil
}

func checkTags(tags []Tag) *FieldError {
	switch {
	case len(tags) == 0:
		return &FieldError{Field: "tags", Message: msgTagsNeeded}
	case len(tags) > MaxTags:
		return &FieldError{Field: "tags", Message: "must not have more than " + strconv.Itoa(MaxTags) + " tags"}
	}
	for _, t := range tags {
		if !ValidTagKey(t.Key) {
			return &FieldError{Field: "tags", Message: t.Key + " is not a valid tag name"}
		}
		if !ValidTagValue(t.Value) {
			return &FieldError{Field: "tags", Message: t.Value + " is not a valid tag value"}
		}
	}
	return nil
}

// checkTime applies the integer rule and the window to a given time.
func checkTime(m *Measurement, name string, now time.Time, w Window) *FieldError {
	if m.bad&fTime != 0 {
		return &FieldError{Field: name, Message: msgNotInteger}
	}
	if !m.HasTime && m.Time == 0 {
		return nil
	}
	if w.MaxAge > 0 && m.Time < now.Add(-w.MaxAge).Unix() {
		return &FieldError{Field: name, Message: msgTooOld, TooOld: true, RequestTime: now.Unix()}
	}
	if w.MaxFuture > 0 && m.Time > now.Add(w.MaxFuture).Unix() {
		return &FieldError{Field: name, Message: msgTooNew}
	}
	return nil
}

// checkSummary enforces count > 0 with a sum and no plain value, then the
// optional statistics of the measurement's API.
func checkSummary(m *Measurement) *FieldError {
	switch {
	case m.HasValue:
		return &FieldError{Field: "value", Message: msgNoValueMix}
	case m.bad&fCount != 0:
		return &FieldError{Field: "count", Message: msgNotInteger}
	case m.Count <= 0:
		return &FieldError{Field: "count", Message: msgPositive}
	case !m.HasSum:
		return &FieldError{Field: "sum", Message: msgRequired}
	}
	if fe := checkNumber(m, fSum, &m.Sum); fe != nil {
		return fe
	}
	if fe := checkOptional(m, m.HasMin, fMin, &m.Min); fe != nil {
		return fe
	}
	if fe := checkOptional(m, m.HasMax, fMax, &m.Max); fe != nil {
		return fe
	}
	if m.Kind != Tagged {
		return checkOptional(m, m.HasSumSquares, fSumSquares, &m.SumSquares)
	}
	if fe := checkOptional(m, m.HasLast, fLast, &m.Last); fe != nil {
		return fe
	}
	return checkOptional(m, m.HasStddev, fStddev, &m.Stddev)
}

func checkOptional(m *Measurement, has bool, f field, v *float64) *FieldError {
	if !has {
		return nil
	}
	return checkNumber(m, f, v)
}

// checkNumber applies the exponent rules and finiteness to one number.
func checkNumber(m *Measurement, f field, v *float64) *FieldError {
	switch a := math.Abs(*v); {
	case m.bad&f != 0 || math.IsNaN(*v):
		return &FieldError{Field: fieldName(f), Message: msgNotNumber}
	case m.huge&f != 0 || a >= hugeValue: // also catches ±Inf
		return &FieldError{Field: fieldName(f), Message: msgOutOfRange}
	case a < tinyValue:
		*v = 0
	}
	return nil
}

func fieldName(f field) string {
	switch f {
	case fName:
		return "name"
	case fSource:
		return "source"
	case fTime:
		return "time"
	case fTags:
		return "tags"
	case fValue:
		return "value"
	case fCount:
		return "count"
	case fSum:
		return "sum"
	case fMin:
		return "min"
	case fMax:
		return "max"
	case fSumSquares:
		return "sum_squares"
	case fLast:
		return "last"
	case fStddev:
		return "stddev"
	}
	return "unknown"
}
