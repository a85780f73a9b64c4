package main

import (
	"strconv"
	"strings"
)

// prettyBodies rewrites a log message that quotes JSON bodies (the plugin's
// debug lines quote each request and answer with %q) for reading: every
// quoted JSON document is replaced by "[body N]" and returned, laid out by
// layoutJSON, to be printed below the line.
func prettyBodies(msg string) (string, []string) {
	var out strings.Builder
	var bodies []string
	for i := 0; i < len(msg); {
		j := strings.IndexByte(msg[i:], '"')
		if j < 0 {
			out.WriteString(msg[i:])
			break
		}
		out.WriteString(msg[i : i+j])
		i += j
		quoted, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			out.WriteByte('"')
			i++
			continue
		}
		i += len(quoted)
		text, err := strconv.Unquote(quoted)
		if err != nil || !strings.HasPrefix(text, "{") && !strings.HasPrefix(text, "[") {
			out.WriteString(quoted)
			continue
		}
		body := layoutJSON(text)
		if strings.HasSuffix(text, "…") {
			body += "\n(the debug log shows only the start of long bodies)"
		}
		bodies = append(bodies, body)
		out.WriteString("[body " + strconv.Itoa(len(bodies)) + "]")
	}
	return out.String(), bodies
}

// maxExpandDepth is how deep layoutJSON puts members on lines of their own:
// the body's keys and the elements of its arrays (one measurement per line);
// anything deeper stays compact.
const maxExpandDepth = 2

// layoutJSON indents a JSON document byte by byte, keeping its key order
// and working on the truncated bodies the debug log may hold, where a
// decoder would give up.
func layoutJSON(s string) string {
	var b strings.Builder
	depth := 0
	inString, escaped := false, false
	newline := func(d int) {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat("  ", d))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			b.WriteByte(c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			b.WriteByte(c)
		case '{', '[':
			b.WriteByte(c)
			depth++
			if depth <= maxExpandDepth && i+1 < len(s) && s[i+1] != '}' && s[i+1] != ']' {
				newline(depth)
			}
		case '}', ']':
			if depth <= maxExpandDepth && i > 0 && s[i-1] != '{' && s[i-1] != '[' {
				newline(depth - 1)
			}
			depth--
			b.WriteByte(c)
		case ',':
			b.WriteByte(c)
			if depth <= maxExpandDepth {
				newline(depth)
			}
		case ':':
			b.WriteByte(c)
			if depth <= maxExpandDepth {
				b.WriteByte(' ')
			}
		case ' ', '\t', '\n', '\r':
			// the layout is ours
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
