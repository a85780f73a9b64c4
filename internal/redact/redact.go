// Package redact makes text safe to print. Everything the plugin prints that
// holds a URL or an HTTP header value — the -check line, errors, log lines,
// Init's errors — passes [Secrets.Redact], so there is one place that decides
// what a credential looks like.
//
// The contract of Redact(text):
//   - every URL in text loses its userinfo (user:password@), and every
//     query or fragment value is replaced by [Mask], keys kept, so a reader
//     sees which parameters were there (an SSO page may put a token in any
//     of them);
//   - a URL is a run of text between whitespace, quotes or angle brackets
//     that holds "scheme://" (also JSON's "scheme:\/\/"), or starts with '/'
//     and has a query (an echoed request line); text without whitespace,
//     quotes or angle brackets is read as one URL even without a scheme (a
//     relative Location, a mistyped api_url);
//   - then every form of the configured credentials is replaced by [Mask]:
//     as they are, the Basic header's base64 (with and without padding,
//     standard and URL alphabet), JSON-, Go- and URL-escaped;
//   - nothing else changes, so text without URLs or credentials is returned
//     as it was.
//
// Redaction may hide more than a secret (a path segment holding '@'): a
// message that says too little is a nuisance, one that leaks is not fixable.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Mask replaces what is hidden.
const Mask = "[redacted]"

// minSecretLen: shorter strings are not looked for in text; they would
// redact ordinary words.
const minSecretLen = 3

// Secrets are the configured credentials in every form they may be echoed
// in. The zero value and nil know no credentials: their Redact only cleans
// URLs.
type Secrets struct {
	forms [][]byte // longest first
}

// New lists user's and token's forms, and the Basic Authorization value
// built from both. The caller keeps ownership of user and token.
func New(user, token []byte) *Secrets {
	s := &Secrets{}
	// The Basic value of credentials too short to look for would be short
	// too, and as likely to appear in ordinary text.
	if len(user) >= minSecretLen || len(token) >= minSecretLen {
		creds := make([]byte, 0, len(user)+1+len(token))
		creds = append(append(append(creds, user...), ':'), token...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			basic := enc.EncodeToString(creds)
			s.add(basic)
			s.add(strings.TrimRight(basic, "="))
		}
		clear(creds)
	}
	for _, secret := range [][]byte{user, token} {
		s.addForms(string(secret))
	}
	// Longest first, so a form is not half-replaced by a shorter one it
	// contains.
	slices.SortFunc(s.forms, func(a, b []byte) int { return len(b) - len(a) })
	return s
}

// addForms adds secret as it is and escaped the ways an API, a proxy or
// our own messages may echo it.
func (s *Secrets) addForms(secret string) {
	s.add(secret)
	if quoted, err := json.Marshal(secret); err == nil { // a string always marshals
		inner := string(quoted[1 : len(quoted)-1])
		s.add(inner)
		s.add(strings.ReplaceAll(inner, "/", `\/`))
	}
	s.add(strings.Trim(strconv.Quote(secret), `"`))
	s.add(strings.Trim(strconv.QuoteToASCII(secret), `"`))
	// Percent-encodings: Go's, JavaScript's encodeURIComponent (space as
	// %20, '+' encoded), and each with lower-case hex, which RFC 3986 makes
	// equivalent and some servers write.
	query := url.QueryEscape(secret)
	for _, escaped := range []string{query, url.PathEscape(secret), strings.ReplaceAll(query, "+", "%20"), url.User(secret).String()} {
		s.add(escaped)
		s.add(lowerHex(escaped))
	}
}

// lowerHex writes the hex digits of s's percent-escapes in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if 'A' <= b[j] && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			i += 2
		}
	}
	return string(b)
}

func (s *Secrets) add(form string) {
	if len(form) < minSecretLen || slices.ContainsFunc(s.forms, func(f []byte) bool { return string(f) == form }) {
		return
	}
	s.forms = append(s.forms, []byte(form))
}

// Forget overwrites the copies of the credentials; s redacts only URLs
// afterwards.
func (s *Secrets) Forget() {
	if s == nil {
		return
	}
	for _, f := range s.forms {
		clear(f)
	}
	s.forms = nil
}

// Redact returns text safe to print: see the package comment.
func (s *Secrets) Redact(text string) string {
	out := cleanURLs(text)
	if s == nil || len(s.forms) == 0 {
		return out
	}
	b := []byte(out)
	found := false
	for _, f := range s.forms {
		if bytes.Contains(b, f) {
			b = bytes.ReplaceAll(b, f, []byte(Mask))
			found = true
		}
	}
	if !found {
		return out
	}
	return string(b)
}

// URL is Redact without configured credentials: for places that have none
// at hand (a URL the user has not configured credentials for yet).
func URL(text string) string { return (*Secrets)(nil).Redact(text) }

// cleanURLs strips userinfo and masks query and fragment values of every URL
// in text: whitespace-, quote- or bracket-delimited runs holding "://"
// (from the scheme on), and runs that start with '/' and hold a query (a
// request line or relative Location echoed by a proxy).
func cleanURLs(text string) string {
	if text == "" {
		return text
	}
	if !strings.ContainsFunc(text, isSpace) && !strings.ContainsAny(text, "\"'<>`") && schemeSep(text) < 0 {
		// A relative or mistyped URL. Compact JSON (an answer's body) has
		// quotes: it is scanned for URLs instead, so its structure stays
		// intact for the classification that reads it.
		return cleanURL(text)
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(text); {
		if isDelimiter(text, i) {
			b.WriteByte(text[i])
			i++
			continue
		}
		end := i
		for end < len(text) && !isDelimiter(text, end) {
			end++
		}
		run := text[i:end]
		start := -1
		if at := schemeSep(run); at >= 0 {
			start = at
			for start > 0 && isSchemeByte(run[start-1]) {
				start--
			}
		} else if run[0] == '/' && strings.ContainsAny(run, "?#") {
			start = 0
		}
		if start < 0 {
			b.WriteString(run)
		} else {
			// Punctuation ending the sentence around the URL stays; the
			// ']' of a Mask is the URL's (redacting twice changes nothing).
			stop := len(run)
			for stop > start && strings.IndexByte(".,;:)]}", run[stop-1]) >= 0 && !strings.HasSuffix(run[:stop], Mask) {
				stop--
			}
			b.WriteString(run[:start])
			b.WriteString(cleanURL(run[start:stop]))
			b.WriteString(run[stop:])
			changed = true
		}
		i = end
	}
	if !changed {
		return text
	}
	return b.String()
}

// schemeSep is the index of the first "://" or JSON's `:\/\/` in s, or -1.
func schemeSep(s string) int {
	a, j := strings.Index(s, "://"), strings.Index(s, `:\/\/`)
	switch {
	case a < 0:
		return j
	case j < 0:
		return a
	}
	return min(a, j)
}

// isDelimiter: a URL does not go on over text[i]: whitespace, a quote
// (also JSON's \"), an angle bracket or a backquote.
func isDelimiter(text string, i int) bool {
	switch c := text[i]; c {
	case '"', '\'', '<', '>', '`':
		return true
	case '\\':
		// JSON's \" (an escaped quote) ends a URL; \\" is an escaped
		// backslash before a real quote, which ends it one byte later.
		return i+1 < len(text) && text[i+1] == '"' && oddBackslashesEndingAt(text, i)
	default:
		return isSpace(rune(c))
	}
}

// cleanURL strips everything up to the last '@' before the query (userinfo,
// also in mistyped URLs such as "https:user:token@host"), and masks the
// values of the query and the fragment.
func cleanURL(u string) string {
	head, tail := u, ""
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		head, tail = u[:i], u[i:]
	}
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		head = head[:authorityStart(head)] + head[at+1:]
	}
	if tail == "" {
		return head
	}
	query, fragment := tail, ""
	if tail[0] == '#' {
		query, fragment = "", tail
	} else if i := strings.IndexByte(tail, '#'); i >= 0 {
		query, fragment = tail[:i], tail[i:]
	}
	var b strings.Builder
	b.Grow(len(head) + len(tail) + 16)
	b.WriteString(head)
	if query != "" {
		b.WriteByte('?')
		maskValues(&b, query[1:])
	}
	if fragment != "" {
		b.WriteByte('#')
		maskValues(&b, fragment[1:])
	}
	return b.String()
}

// authorityStart is where what may be userinfo begins in head: after a
// scheme written as http(s) or followed by '/', and the slashes after it.
// Without a recognised scheme everything before '@' may be a credential
// ("user:token@host" parses as the scheme "user").
func authorityStart(head string) int {
	i := 0
	if c := strings.IndexByte(head, ':'); c > 0 && isScheme(head[:c]) {
		scheme := strings.ToLower(head[:c])
		if scheme == "http" || scheme == "https" || strings.HasPrefix(head[c+1:], "/") || strings.HasPrefix(head[c+1:], `\/`) {
			i = c + 1
		}
	}
	for i < len(head) {
		switch {
		case head[i] == '/':
			i++
		case strings.HasPrefix(head[i:], `\/`):
			i += 2
		default:
			return i
		}
	}
	return i
}

// maskValues writes the &-separated items of a query or fragment with
// their values masked; an item without '=' may be a bare token and is
// masked whole.
func maskValues(b *strings.Builder, part string) {
	for i, item := range strings.Split(part, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		key, value, hasValue := strings.Cut(item, "=")
		switch {
		case hasValue && value == "":
			b.WriteString(key + "=")
		case hasValue:
			b.WriteString(key + "=" + Mask)
		case item != "":
			b.WriteString(Mask)
		}
	}
}

func isScheme(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isSchemeByte(s[i]) {
			return false
		}
	}
	return true
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func oddBackslashesEndingAt(text string, i int) bool {
	n := 0
	for ; i >= 0 && text[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}
