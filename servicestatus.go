package librato

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// defaultAPIHost is the host of every default api_url. SolarWinds announced
// the end of the AppOptics/Librato service, and a third party reported in
// July 2026 that this name no longer resolves: when it does not, the user
// needs to hear about the service, not only "check api_url".
const defaultAPIHost = "metrics-api.librato.com"

// serviceStatusHint points to the README section on where Librato stands.
const serviceStatusHint = `Librato's own API host does not resolve, and SolarWinds has announced the ` +
	`end of service of AppOptics, Librato's successor: see "Service status" in the plugin's README ` +
	`(https://github.com/seed-d22a899f/librato#service-status), ` +
	`and point api_url at a Librato-compatible endpoint or move to another output`

// unresolvedDefaultHost reports whether err is the resolver's answer that
// Librato's default API host does not exist ("no such host"). Another
// host's DNS failure is a typo, and a resolver timeout is local trouble:
// for those "check api_url" is the right advice.
func unresolvedDefaultHost(err error) bool {
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		return false
	}
	return strings.EqualFold(strings.TrimSuffix(dnsErr.Name, "."), defaultAPIHost)
}

// withServiceStatus adds serviceStatusHint to an error that
// unresolvedDefaultHost recognises, and returns any other error as it is.
func withServiceStatus(err error) error {
	if err == nil || !unresolvedDefaultHost(err) {
		return err
	}
	return fmt.Errorf("%w: %s", err, serviceStatusHint)
}
