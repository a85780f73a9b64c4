package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/logger"
)

// pluginSource is how Telegraf's logger names the output in log lines
// ("[outputs.librato]"), and how the capture tells its lines apart.
const pluginSource = "outputs.librato"

// logEntry is one line the plugin logged.
type logEntry struct {
	level telegraf.LogLevel
	msg   string
}

// logCapture receives every Telegraf log message through the logger's
// callback hook. The plugin keeps the logger Telegraf's loader gave it, with
// its prefix, level and error accounting; only the final sink is ours, so
// the lines go to the writer run was given rather than to os.Stderr.
type logCapture struct {
	mu      sync.Mutex
	w       io.Writer
	level   telegraf.LogLevel
	entries []logEntry
	id      string
}

// captureLogs installs the capture. Telegraf's logging is process-global, so
// run serialises its calls (see runMu) and stop must be called when done.
func captureLogs(w io.Writer, level telegraf.LogLevel) (*logCapture, error) {
	c := &logCapture{w: w, level: level}
	// The callback does the printing; silencing the global sink keeps every
	// line from appearing twice.
	logger.RedirectLogging(io.Discard)
	id, err := logger.AddCallback(c.handle)
	if err != nil {
		return nil, fmt.Errorf("installing log capture: %w", err)
	}
	c.id = id
	return c, nil
}

func (c *logCapture) stop() { logger.RemoveCallback(c.id) }

// handle is called for every message at every level, before Telegraf's own
// level filter: the capture records the plugin's debug lines (which say
// which point was skipped) even when it does not print them.
func (c *logCapture) handle(level telegraf.LogLevel, ts time.Time, source string, _ map[string]any, args ...any) {
	msg := fmt.Sprint(args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	// An alias set through -config makes the source "outputs.librato::alias".
	fromPlugin := source == pluginSource || strings.HasPrefix(source, pluginSource+"::")
	if fromPlugin {
		c.entries = append(c.entries, logEntry{level: level, msg: msg})
	}
	// What the report lists is not printed here too: one line per warning.
	if !c.level.Includes(level) || fromPlugin && reported(level, msg) {
		return
	}
	prefix := ""
	if source != "" {
		prefix = "[" + source + "] "
	}
	msg, bodies := prettyBodies(msg)
	// Telegraf's text format, so the lines read as they would in an agent log.
	fmt.Fprintf(c.w, "%s %s %s%s\n", ts.Format(time.RFC3339), level.Indicator(), prefix, msg)
	for i, body := range bodies {
		fmt.Fprintf(c.w, "    [body %d]\n%s", i+1, indent(body+"\n"))
	}
}

// Debug lines the report lists, next to the warnings they explain.
const (
	skippedPrefix   = "Skipping "
	shortenedPrefix = "Shortened "
)

// reported tells whether the report's Dropped or Renamed section shows a
// plugin message.
func reported(level telegraf.LogLevel, msg string) bool {
	return telegraf.Warn.Includes(level) ||
		level == telegraf.Debug && (strings.HasPrefix(msg, skippedPrefix) || strings.HasPrefix(msg, shortenedPrefix))
}

// warnings returns what the plugin logged at warning level or above: its
// account of every measurement it did not deliver.
func (c *logCapture) warnings() []logEntry {
	return c.matching(func(e logEntry) bool { return telegraf.Warn.Includes(e.level) })
}

// debug returns the plugin's debug messages that start with prefix.
func (c *logCapture) debug(prefix string) []logEntry {
	return c.matching(func(e logEntry) bool {
		return e.level == telegraf.Debug && strings.HasPrefix(e.msg, prefix)
	})
}

func (c *logCapture) matching(keep func(logEntry) bool) []logEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []logEntry
	for _, e := range c.entries {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}
