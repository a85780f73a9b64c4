package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"

	// Registers outputs.librato, as a Telegraf build with this plugin would.
	_ "github.com/seed-d22a899f/librato"
)

// pluginSettings is what the tryout puts into [[outputs.librato]].
type pluginSettings struct {
	url, user, token string
	api              string
	template         string
	summaries, debug bool
	extra            string // verbatim TOML lines from -config
}

// configTOML renders the settings as the config file a user would write.
// Only keys that differ from the plugin's defaults are set, so the printed
// config doubles as a minimal example.
func configTOML(s pluginSettings) string {
	var b strings.Builder
	b.WriteString("[[outputs.librato]]\n")
	writeKey(&b, "api_user", s.user)
	writeKey(&b, "api_token", s.token)
	writeKey(&b, "api", s.api)
	writeKey(&b, "api_url", s.url)
	if s.template != "" {
		writeKey(&b, "template", s.template)
	}
	if s.summaries {
		b.WriteString("  summaries = true\n")
	}
	if s.debug {
		b.WriteString("  debug = true\n")
	}
	for line := range strings.Lines(s.extra) {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String()
}

func writeKey(b *strings.Builder, key, value string) {
	fmt.Fprintf(b, "  %s = %s\n", key, tomlString(value))
}

// tomlString quotes s as a TOML basic string. strconv.Quote is not enough:
// Go's \x escapes are not valid TOML.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// loadOutput feeds the TOML to Telegraf's config loader, the path a
// telegraf.conf takes: option parsing, secrets, the output model and the
// plugin's logger all come from Telegraf, not from this command.
func loadOutput(toml string) (*models.RunningOutput, error) {
	c := config.NewConfig()
	if err := c.LoadConfigData([]byte(toml), "librato-tryout.conf"); err != nil {
		return nil, fmt.Errorf("loading config: %w", err)
	}
	if len(c.Outputs) != 1 {
		return nil, errors.New("loading config: want exactly one [[outputs.librato]]")
	}
	return c.Outputs[0], nil
}
