package librato

import (
	"github.com/influxdata/telegraf/selfstat"
)

// dropReason names why a measurement was not sent; it is the value of the
// "reason" tag of the measurements_dropped self-metric.
type dropReason int

const (
	reasonInvalidValue dropReason = iota // NaN or ±Inf
	reasonOutOfRange                     // |v| beyond Librato's exponent limits
	reasonInvalidTime                    // metric time at or before the Unix epoch
	reasonEmptyName                      // the measurement name is empty
	reasonEmptySource                    // template resolved to no usable source
	reasonNoTags                         // tagged API, but nothing to tag with
	reasonZeroCount                      // summary with count 0
	reasonRejected                       // Librato answered 4xx for it
	reasonSeriesLimit                    // max_new_series reached
	numReasons
)

var reasonNames = [numReasons]string{
	reasonInvalidValue: "invalid_value",
	reasonOutOfRange:   "out_of_range",
	reasonInvalidTime:  "invalid_time",
	reasonEmptyName:    "empty_name",
	reasonEmptySource:  "empty_source",
	reasonNoTags:       "no_tags",
	reasonZeroCount:    "zero_count",
	reasonRejected:     "rejected_by_api",
	reasonSeriesLimit:  "series_limit",
}

func (r dropReason) String() string { return reasonNames[r] }

// stats are the plugin's self-metrics, reported by inputs.internal as
// internal_librato.
type stats struct {
	written   selfstat.Stat
	dropped   [numReasons]selfstat.Stat
	shortened selfstat.Stat
	deduped   selfstat.Stat
	collapsed selfstat.Stat
	requests  selfstat.Stat
	retries   selfstat.Stat
	apiFailed selfstat.Stat
	// rateLimit and rateRemaining: the tightest X-Librato-RateLimit-*
	// budget of the last answer.
	rateLimit, rateRemaining selfstat.Stat
	requestTime              selfstat.Stat
	// controls: control requests sent for evidence (internal/delivery).
	controls selfstat.Stat
}

func newStats(endpoint string) *stats {
	tags := map[string]string{"url": endpoint}
	s := &stats{
		written:       selfstat.Register("librato", "measurements_written", tags),
		shortened:     selfstat.Register("librato", "names_shortened", tags),
		deduped:       selfstat.Register("librato", "measurements_not_resent", tags),
		collapsed:     selfstat.Register("librato", "measurements_collapsed", tags),
		requests:      selfstat.Register("librato", "requests", tags),
		retries:       selfstat.Register("librato", "retries", tags),
		apiFailed:     selfstat.Register("librato", "measurements_failed_by_api", tags),
		rateLimit:     selfstat.Register("librato", "rate_limit", tags),
		rateRemaining: selfstat.Register("librato", "rate_limit_remaining", tags),
		requestTime:   selfstat.RegisterTiming("librato", "request_time_ns", tags),
		controls:      selfstat.Register("librato", "control_requests", tags),
	}
	for r := range s.dropped {
		s.dropped[r] = selfstat.Register("librato", "measurements_dropped",
			map[string]string{"url": endpoint, "reason": dropReason(r).String()})
	}
	return s
}
