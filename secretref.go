package librato

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/influxdata/telegraf/config"
)

// envRef matches a ${NAME} reference. Telegraf's loader leaves one in the
// value when NAME is not set in its environment (it substitutes only
// variables that exist), so a credential still holding it would be sent
// literally and fail with a 401 that does not say why.
var envRef = regexp.MustCompile(`\$\{(\w+)\}`)

// unsetEnvVars returns the names of the ${NAME} references left in value.
func unsetEnvVars(value []byte) []string {
	matches := envRef.FindAllSubmatch(value, -1)
	if len(matches) == 0 {
		return nil
	}
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, string(m[1]))
	}
	return names
}

// checkSecretRefs fails when api_user or api_token still holds a reference
// Telegraf could not resolve: a secret-store @{store:key} no store linked
// (librato-execd has no secret stores) or an unset ${VAR}. Errors name the
// reference, never the value.
func (l *Librato) checkSecretRefs() error {
	for _, s := range []struct {
		option string
		secret *config.Secret
	}{{"api_user", &l.APIUser}, {"api_token", &l.APIToken}} {
		if err := checkSecretRef(s.option, s.secret); err != nil {
			return err
		}
	}
	return nil
}

func checkSecretRef(option string, secret *config.Secret) error {
	if refs := secret.GetUnlinked(); len(refs) > 0 {
		return fmt.Errorf("%s refers to %s, which no secret store resolved: "+
			"define that [[secretstores]] in Telegraf's configuration, or use ${VAR} where there are no secret stores (librato-execd)",
			option, strings.Join(refs, ", "))
	}
	buf, err := secret.Get()
	if err != nil {
		return fmt.Errorf("reading %s: %w", option, err)
	}
	names := unsetEnvVars(buf.Bytes())
	buf.Destroy()
	if len(names) > 0 {
		// The same config is loaded by Telegraf, librato-execd and -check from
		// a shell: the message must fit all three.
		return fmt.Errorf("%s uses environment variable %s, which is not set in the environment: "+
			"set it for the process that loads this config (for the Telegraf service, e.g. in the file "+
			"its systemd EnvironmentFile names; for -check, export it in the shell)",
			option, strings.Join(names, ", "))
	}
	return nil
}
