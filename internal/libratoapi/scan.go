package libratoapi

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth matches encoding/json's nesting limit, so ignored fields (such
// as attributes) nest as deep as the fake used to accept.
const maxDepth = 10000

// scanner is a minimal JSON reader over a complete body. It never builds
// generic values: callers walk objects and arrays and take the scalars they
// need, so a request costs no allocation per field. After the first syntax
// error every method is a no-op and failed is set.
type scanner struct {
	b      []byte
	i      int
	failed bool
	// buf holds an unescaped string; it is reused, so a returned string
	// slice is valid only until the next string is read.
	buf []byte
}

func (s *scanner) fail() { s.failed = true; s.i = len(s.b) }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) consume(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// end checks that nothing but white space follows the top-level value.
func (s *scanner) end() {
	if s.peek() != 0 || s.i != len(s.b) {
		s.fail()
	}
}

// member advances to the next key of an object whose '{' was consumed and
// returns it (valid until the next string read) with ok; ok is false at the
// closing brace or on a syntax error.
func (s *scanner) member(first *bool) (key []byte, ok bool) {
	if s.failed {
		return nil, false
	}
	if s.consume('}') {
		return nil, false
	}
	if !*first && !s.consume(',') {
		s.fail()
		return nil, false
	}
	*first = false
	if s.peek() != '"' {
		s.fail()
		return nil, false
	}
	key = s.str()
	if !s.consume(':') {
		s.fail()
		return nil, false
	}
	return key, !s.failed
}

// element advances to the next element of an array whose '[' was consumed.
func (s *scanner) element(first *bool) bool {
	if s.failed || s.consume(']') {
		return false
	}
	if !*first && !s.consume(',') {
		s.fail()
		return false
	}
	*first = false
	return !s.failed
}

// str reads a string at s.i (the opening quote) and returns its unescaped
// bytes: a slice of the body when it has no escapes, else of s.buf. Invalid
// UTF-8 is kept as is; the rules reject non-ASCII names and tags anyway.
func (s *scanner) str() []byte {
	s.i++ // opening quote
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1]
		case c == '\\':
			return s.unescape(start)
		case c < 0x20:
			s.fail()
			return nil
		}
		s.i++
	}
	s.fail()
	return nil
}

// unescape continues str from the first backslash, copying into s.buf.
func (s *scanner) unescape(start int) []byte {
	s.buf = append(s.buf[:0], s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.buf
		case c < 0x20:
			s.fail()
			return nil
		case c != '\\':
			s.buf = append(s.buf, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		esc := s.b[s.i+1]
		s.i += 2
		switch esc {
		case '"', '\\', '/':
			s.buf = append(s.buf, esc)
		case 'b':
			s.buf = append(s.buf, '\b')
		case 'f':
			s.buf = append(s.buf, '\f')
		case 'n':
			s.buf = append(s.buf, '\n')
		case 'r':
			s.buf = append(s.buf, '\r')
		case 't':
			s.buf = append(s.buf, '\t')
		case 'u':
			s.buf = utf8.AppendRune(s.buf, s.escapedRune())
		default:
			s.fail()
			return nil
		}
	}
	s.fail()
	return nil
}

// escapedRune reads the XXXX of \uXXXX (and a following low surrogate),
// mapping broken surrogates to U+FFFD as encoding/json does.
func (s *scanner) escapedRune() rune {
	r, ok := s.hex4()
	if !ok {
		s.fail()
		return utf8.RuneError
	}
	if !utf16.IsSurrogate(r) {
		return r
	}
	if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
		save := s.i
		s.i += 2
		if r2, ok := s.hex4(); ok {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d
			}
		}
		s.i = save
	}
	return utf8.RuneError
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.i += 4
	return r, true
}

// number reads a number literal at s.i and returns its text.
func (s *scanner) number() []byte {
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			s.i++
			continue
		}
		break
	}
	lit := s.b[start:s.i]
	if !validNumber(lit) {
		s.fail()
		return nil
	}
	return lit
}

// literal consumes true, false or null.
func (s *scanner) literal() {
	for _, w := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
			s.i += len(w)
			return
		}
	}
	s.fail()
}

// null consumes a JSON null if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// skip consumes one value of any type, checking its syntax.
func (s *scanner) skip(depth int) {
	if depth > maxDepth {
		s.fail()
		return
	}
	switch s.peek() {
	case '{':
		s.i++
		for first := true; ; {
			if _, ok := s.member(&first); !ok {
				return
			}
			s.skip(depth + 1)
		}
	case '[':
		s.i++
		for first := true; s.element(&first); {
			s.skip(depth + 1)
		}
	case '"':
		s.str()
	case 't', 'f', 'n':
		s.literal()
	case 0:
		s.fail()
	default:
		s.number()
	}
}

// scalar reads one value and describes it for typed fields: a number's
// literal, a string's unescaped bytes, or kind alone for the rest (which
// are consumed). The returned bytes are valid until the next string read.
func (s *scanner) scalar() (kind byte, text []byte) {
	switch c := s.peek(); c {
	case '"':
		return '"', s.str()
	case 'n':
		s.literal()
		return 'n', nil
	case 't', 'f':
		start := s.i
		s.literal()
		return 't', s.b[start:s.i]
	case '{', '[':
		start := s.i
		s.skip(1)
		return c, s.b[start:s.i]
	case 0:
		s.fail()
		return 0, nil
	default:
		return '0', s.number()
	}
}
