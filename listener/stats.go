package listener

import (
	"strconv"

	"github.com/influxdata/telegraf/selfstat"
)

// answeredStatuses are the statuses the listener gives; anything else is
// counted as "other".
var answeredStatuses = []int{200, 202, 400, 401, 404, 405, 413, 415, 422, 500, 503}

// stats are the internal (selfstat) counters, tagged with the address.
type stats struct {
	requests     selfstat.Stat
	measurements selfstat.Stat
	responses    map[int]selfstat.Stat
	other        selfstat.Stat
}

func newStats(address string) *stats {
	tags := map[string]string{"address": address}
	s := &stats{
		requests:     selfstat.Register("librato_listener", "requests_received", tags),
		measurements: selfstat.Register("librato_listener", "measurements_delivered", tags),
		responses:    make(map[int]selfstat.Stat, len(answeredStatuses)),
	}
	for _, code := range answeredStatuses {
		s.responses[code] = selfstat.Register("librato_listener", "responses",
			map[string]string{"address": address, "status": strconv.Itoa(code)})
	}
	s.other = selfstat.Register("librato_listener", "responses",
		map[string]string{"address": address, "status": "other"})
	return s
}

// response counts an answer; the map is read-only after newStats.
func (s *stats) response(status int) {
	if st, ok := s.responses[status]; ok {
		st.Incr(1)
		return
	}
	s.other.Incr(1)
}
