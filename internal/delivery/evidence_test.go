package delivery

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProven is the evidence rule as a table over recorded answers. Times
// are readings of the flush's logical clock: sent, then answered.
func TestProven(t *testing.T) {
	const u, other = "https://api.example/v1/metrics", "https://api.example/v1/measurements"
	fieldError := []byte(`{"errors":{"params":{"value":["is not a number"]}}}`)
	answer := func(status int, body []byte, url string, n int, sent, answered uint64) outcome {
		o := classify(status, nil, body, false, testEpoch())
		o.url, o.measurements, o.sent, o.answered = url, n, sent, answered
		return o
	}
	r1 := answer(400, fieldError, u, 1, 1, 2)
	r2 := answer(400, fieldError, u, 1, 5, 6)
	between := []span{{url: u, sent: 3, answered: 4}}
	cases := []struct {
		name     string
		r1       outcome
		accepted []span
		r2       outcome
		want     bool
	}{
		{"R1, A sent after R1's answer, R2 sent after A's answer", r1, between, r2, true},
		{"no acceptance at all", r1, nil, r2, false},
		{"acceptance before R1 (an earlier flush, or long ago)", r1, []span{{url: u, sent: 0, answered: 1}}, r2, false},
		{"acceptance sent while R1 was out", r1, []span{{url: u, sent: 1, answered: 4}}, r2, false},
		{"acceptance answered after R2 was sent", r1, []span{{url: u, sent: 3, answered: 5}}, r2, false},
		{"acceptance at the other API's URL", r1, []span{{url: other, sent: 3, answered: 4}}, r2, false},
		{"R2 at the other URL", r1, between, answer(400, fieldError, other, 1, 5, 6), false},
		{"R1 carried two measurements", answer(400, fieldError, u, 2, 1, 2), between, r2, false},
		{"R2 is a proxy's HTML 400", r1, between, answer(400, []byte(`<html>Bad Request</html>`), u, 1, 5, 6), false},
		{"R1 is a request-level error", answer(400, []byte(`{"errors":{"request":["bad"]}}`), u, 1, 1, 2), between, r2, false},
		{"R1 is a 413", answer(413, nil, u, 1, 1, 2), between, r2, false},
		{"R1 names the metric in params.name as messages",
			answer(400, []byte(`{"errors":{"params":{"name":["is too long"]}}}`), u, 1, 1, 2), between, r2, true},
		{"R2 accepted", r1, between, answer(200, nil, u, 1, 5, 6), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := proven(tc.r1, tc.accepted, tc.r2)
			require.Equal(t, tc.want, ok)
			if ok {
				require.Equal(t, between[0], a)
			}
		})
	}
}
