#!/usr/bin/env bash
# Lints the plugin packages the way Telegraf lints its own plugins:
#   - golangci-lint (the version Telegraf's Makefile pins, installed into
#     build/tools with go install) with Telegraf's .golangci.yml from the
#     pinned Telegraf release in the module cache, on the output (.), the
#     listener input (./listener) and its execd command;
#   - tools/readme_linter on copies of README.md at
#     plugins/outputs/librato/README.md and of listener/README.md at
#     plugins/inputs/librato_listener/README.md, the paths it infers the
#     rules from.
#
#   scripts/lint.sh           # both; exit 1 if either reports anything
#
# The only change to Telegraf's configuration: paths are reported relative
# to this checkout (run.relative-path-mode: wd) instead of the config file.
set -euo pipefail

GOLANGCI_LINT_VERSION=v2.11.4 # Telegraf v1.39.3's Makefile (lint-install)
TELEGRAF=github.com/influxdata/telegraf

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/build/tools"
mkdir -p "$TOOLS"
cd "$ROOT"

version="$(go list -m -f '{{.Version}}' "$TELEGRAF")"
lint="$TOOLS/golangci-lint-$GOLANGCI_LINT_VERSION"
if [ ! -x "$lint" ]; then
	echo "lint: installing golangci-lint $GOLANGCI_LINT_VERSION" >&2
	(cd "$TOOLS" && GOBIN="$TOOLS/bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION")
	mv "$TOOLS/bin/golangci-lint" "$lint"
fi

telegraf_dir="$(go list -m -f '{{.Dir}}' "$TELEGRAF")"
[ -n "$telegraf_dir" ] || { go mod download "$TELEGRAF" && telegraf_dir="$(go list -m -f '{{.Dir}}' "$TELEGRAF")"; }
config="$TOOLS/golangci-telegraf-$version.yml"
{
	cat "$telegraf_dir/.golangci.yml"
	printf '\n# Added for %s: report paths relative to the checkout.\nrun:\n  relative-path-mode: wd\n' \
		"$(go list -m)"
} >"$config"

status=0
echo "lint: golangci-lint $GOLANGCI_LINT_VERSION with Telegraf $version's .golangci.yml on the plugin package" >&2
"$lint" run --config "$config" . ./listener/... ./cmd/librato-listener-execd || status=1

echo "lint: readme_linter@$version on README.md as plugins/outputs/librato/README.md" >&2
readme="$TOOLS/readme/plugins/outputs/librato"
mkdir -p "$readme"
cp README.md "$readme/README.md"
listener_readme="$TOOLS/readme/plugins/inputs/librato_listener"
mkdir -p "$listener_readme"
cp listener/README.md "$listener_readme/README.md"
echo "lint: readme_linter@$version on listener/README.md as plugins/inputs/librato_listener/README.md" >&2
(cd "$TOOLS/readme" && go run "$TELEGRAF/tools/readme_linter@$version" \
	plugins/outputs/librato/README.md plugins/inputs/librato_listener/README.md) || status=1
exit $status
