package librato

import "runtime/debug"

// moduleVersion is this module's version as the Go toolchain recorded it:
// the main module's when the binary is librato-execd (go install
// .../cmd/librato-execd@v1.2.3 records v1.2.3), the dependency's when it is
// built into Telegraf (scripts/build-telegraf.sh requires the checkout's
// git version), a module replacement's version taking precedence. Builds
// that record none report "devel".
func moduleVersion(info *debug.BuildInfo) string {
	if info == nil {
		return "devel"
	}
	if info.Main.Path == modulePath {
		return knownVersion(info.Main.Version)
	}
	for _, dep := range info.Deps {
		if dep.Path != modulePath {
			continue
		}
		// A directory replacement records "(devel)": the required version
		// is the better answer then.
		if dep.Replace != nil && knownVersion(dep.Replace.Version) != "devel" {
			return dep.Replace.Version
		}
		return knownVersion(dep.Version)
	}
	return "devel"
}

// knownVersion maps what Go records for an unversioned build ("(devel)",
// or nothing) to "devel".
func knownVersion(v string) string {
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// Version is this module's version in the running binary ("devel" for a
// build that records none, such as go run): what librato-execd -version
// prints and the User-Agent carries.
func Version() string {
	info, _ := debug.ReadBuildInfo() // nil when there is none
	return moduleVersion(info)
}
