package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLayoutJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "legacy body: one gauge per line, key order kept",
			in:   `{"gauges":[{"name":"a","source":"s","value":1},{"name":"b","value":2}]}`,
			want: "{\n  \"gauges\": [\n    {\"name\":\"a\",\"source\":\"s\",\"value\":1},\n    {\"name\":\"b\",\"value\":2}\n  ]\n}",
		},
		{
			name: "error answer",
			in:   `{"errors":{"params":{"name":["is invalid"]}},"request_time":1}`,
			want: "{\n  \"errors\": {\n    \"params\": {\"name\":[\"is invalid\"]}\n  },\n  \"request_time\": 1\n}",
		},
		{
			name: "empty containers stay closed",
			in:   `{"a":{},"b":[]}`,
			want: "{\n  \"a\": {},\n  \"b\": []\n}",
		},
		{
			name: "structure inside strings is text",
			in:   `{"name":"a,{b}:[c]\"d"}`,
			want: "{\n  \"name\": \"a,{b}:[c]\\\"d\"\n}",
		},
		{
			name: "truncated body",
			in:   `{"gauges":[{"name":"a","value":1},{"name":"b…`,
			want: "{\n  \"gauges\": [\n    {\"name\":\"a\",\"value\":1},\n    {\"name\":\"b…",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, layoutJSON(tt.in))
		})
	}
}

func TestPrettyBodies(t *testing.T) {
	tests := []struct {
		msg, line string
		bodies    []string
	}{
		{
			msg:    `POST http://x/v1/metrics: 1 measurements, 20 bytes: "{\"gauges\":[]}" -> 400 in 1ms: "{\"errors\":{\"request\":[\"bad\"]}}"`,
			line:   `POST http://x/v1/metrics: 1 measurements, 20 bytes: [body 1] -> 400 in 1ms: [body 2]`,
			bodies: []string{"{\n  \"gauges\": []\n}", "{\n  \"errors\": {\n    \"request\": [\"bad\"]\n  }\n}"},
		},
		{
			msg:    `POST x: "{\"gauges\":[{\"name\":\"a\"}…"`,
			line:   `POST x: [body 1]`,
			bodies: []string{"{\n  \"gauges\": [\n    {\"name\":\"a\"}…\n(the debug log shows only the start of long bodies)"},
		},
		// Quoted strings that are not JSON, and stray quotes, stay as they were.
		{msg: `Skipping metric "app" (1 measurements)`, line: `Skipping metric "app" (1 measurements)`},
		{msg: `a "b`, line: `a "b`},
		{msg: `no quotes`, line: `no quotes`},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			line, bodies := prettyBodies(tt.msg)
			require.Equal(t, tt.line, line)
			require.Equal(t, tt.bodies, bodies)
		})
	}
}
