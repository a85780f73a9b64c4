package redact

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedTeamPercentEncodingVariants: an SSO page or proxy that echoes the
// credentials in a URL path may percent-encode them with lower-case hex
// (RFC 3986 makes the case equivalent) or the way JavaScript's
// encodeURIComponent does (everything reserved encoded, space as %20): forms
// that Go's QueryEscape and PathEscape never produce, so they were not
// looked for, and a path is not masked like a query.
func TestRedTeamPercentEncodingVariants(t *testing.T) {
	const user, token = "ops+librato@example.com", "tok en+/x"
	s := New([]byte(user), []byte(token))
	for _, text := range []string{
		"Location: https://sso.example/u/ops%2blibrato%40example.com/login", // lower-case hex
		"Location: https://sso.example/t/tok%20en%2B%2Fx/login",             // encodeURIComponent
		"Location: https://sso.example/t/tok%20en%2b%2fx/login",             // both
		"Location: https://sso.example/t/tok+en%2b%2fx/login",               // QueryEscape, lower-case
	} {
		out := s.Redact(text)
		require.Contains(t, out, Mask, "%q -> %q", text, out)
		require.NotContains(t, out, "librato%40", "%q -> %q", text, out)
		require.NotContains(t, out, "en%2", "%q -> %q", text, out)
	}
}
