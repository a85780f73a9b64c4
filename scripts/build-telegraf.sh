#!/usr/bin/env bash
# Builds Telegraf with this module as its outputs.librato, REPLACING the
# built-in plugin (the registry is a map keyed by name: keeping the built-in
# import beside ours would let it win), and with this module's
# inputs.librato_listener whenever a configuration uses it (and in the
# default and --all builds).
#
#   scripts/build-telegraf.sh [--config FILE]... [--config-dir DIR]... [-o OUTPUT]
#   scripts/build-telegraf.sh --all [-o OUTPUT]
#
# --config/--config-dir: exactly the plugins those Telegraf configurations
#     use, chosen by Telegraf's own tools/custom_builder (run from the copied
#     source with --dry-run), plus outputs.librato and migrations.
# --all: every Telegraf plugin (about 10 minutes and 440 MB on 2 cores).
# neither: the small set the tests and the Segment recipe use (inputs.file,
#     inputs.mock, inputs.http_listener_v2, inputs.librato_listener,
#     outputs.file, the influx/json/json_v2 parsers).
# -o OUTPUT: the binary (default build/telegraf-librato, or
#     build/telegraf-librato-<version> for another TELEGRAF_VERSION).
#
# Environment:
#   TELEGRAF_VERSION  Telegraf release to build (default v1.39.3, the one
#                     go.mod pins; v1.40.1 is tested too)
#   TELEGRAF_TAGS     extra build tags, added to the chosen ones
#                     (e.g. TELEGRAF_TAGS=inputs.internal,inputs.procstat)
#   TELEGRAF_SRC      a writable Telegraf source tree to build from instead
#                     of the release's copy in build/ (a fork, a patched
#                     release); the script keeps its own files' originals in
#                     .orig/ there and edits it as it does the copy
#   GOTOOLCHAIN       when that release needs a newer Go than the local one
#                     and this is unset or "local", the script sets it to the
#                     release's go.mod version (Go downloads that toolchain
#                     from the module proxy); set it to e.g. go1.27.4 to pick.
#
# Telegraf must be the main module, so its source is copied from the module
# cache to build/telegraf-src-<version> (kept for quick rebuilds), its
# plugins/outputs/all/librato.go is pointed at this module, and its go.mod
# gets a replace to a copy of this checkout in _librato/ there. Nothing
# tracked in this repository is modified. After building, the binary must list outputs.librato and its
# --usage must be this plugin's sample.conf, or the script fails. Its --version
# says which build of this module it carries: <telegraf>-librato-<module version>.
#
# Telegraf removes plugins whose service is gone. If a release has no
# plugins/outputs/librato, this plugin is added instead of replacing it, and
# the [[outputs.librato]] sections are left out of what custom_builder reads
# (it refuses plugins it does not know); outputs.librato is added anyway.
set -euo pipefail

PINNED_VERSION=v1.39.3
TELEGRAF=github.com/influxdata/telegraf
MODULE=github.com/seed-d22a899f/librato
DEFAULT_TAGS=custom,inputs.file,inputs.mock,inputs.http_listener_v2,inputs.librato_listener,outputs.file,parsers.influx,parsers.json,parsers.json_v2
ALWAYS_TAGS=outputs.librato,migrations

die() {
	echo "build-telegraf: ERROR: $*" >&2
	exit 1
}
say() { echo "build-telegraf: $*" >&2; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${TELEGRAF_VERSION:-$PINNED_VERSION}"
case "$VERSION" in v*) ;; *) VERSION="v$VERSION" ;; esac

configs=()
all=false
OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--config | -config)
		[ $# -ge 2 ] || die "$1 needs a file"
		[ -f "$2" ] || die "config file $2 not found"
		configs+=(--config "$(abspath "$2")")
		shift 2
		;;
	--config-dir | -config-dir)
		[ $# -ge 2 ] || die "$1 needs a directory"
		[ -d "$2" ] || die "config directory $2 not found"
		configs+=(--config-dir "$(abspath "$2")")
		shift 2
		;;
	--all) all=true; shift ;;
	-o | --output)
		[ $# -ge 2 ] || die "$1 needs a path"
		OUT="$2"
		shift 2
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		[ -z "$OUT" ] || die "unexpected argument $1"
		OUT="$1" # the output path, as before the options existed
		shift
		;;
	esac
done
if $all && [ ${#configs[@]} -gt 0 ]; then
	die "--all and --config/--config-dir exclude each other"
fi
if [ -z "$OUT" ]; then
	OUT="$ROOT/build/telegraf-librato"
	[ "$VERSION" = "$PINNED_VERSION" ] || OUT="$OUT-$VERSION"
fi
OUT="$(abspath "$OUT")"
SRC="$(abspath "${TELEGRAF_SRC:-$ROOT/build/telegraf-src-$VERSION}")"
mkdir -p "$ROOT/build" "$(dirname "$OUT")"

# pick_toolchain exports GOTOOLCHAIN when the release's go.mod asks for a
# newer Go than the one running, unless the caller chose a toolchain.
pick_toolchain() {
	local gomod want have
	gomod="$(cd "$ROOT" && GOTOOLCHAIN=local go list -m -f '{{.GoMod}}' "$TELEGRAF@$VERSION")" ||
		die "Telegraf $VERSION is not available from the module proxy"
	want="$(sed -n 's/^toolchain go\([0-9.]*\).*/\1/p' "$gomod")"
	[ -n "$want" ] || want="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")"
	[ -n "$want" ] || die "no go version in $gomod"
	have="$(GOTOOLCHAIN=local go env GOVERSION)"
	have="${have#go}"
	have="${have%%[-+ ]*}"
	if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" = "$want" ]; then
		return # the local Go is new enough
	fi
	case "${GOTOOLCHAIN:-local}" in
	local | auto | path | *+auto | *+path)
		export GOTOOLCHAIN="go$want"
		say "Telegraf $VERSION needs Go $want (local: $have): using GOTOOLCHAIN=$GOTOOLCHAIN (downloaded from the module proxy once)"
		;;
	*) say "Telegraf $VERSION needs Go $want: using GOTOOLCHAIN=$GOTOOLCHAIN as set" ;;
	esac
}
pick_toolchain

# module_version is the version Go would give this checkout (a tag, or a
# pseudo-version from the commit), recorded in the binary's build info and
# sent in the plugin's User-Agent; v0.0.0 outside git.
module_version() {
	local tag base hash when major minor patch
	if ! hash="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null)"; then
		echo v0.0.0
		return
	fi
	if tag="$(git -C "$ROOT" describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null)"; then
		echo "$tag"
		return
	fi
	when="$(TZ=UTC git -C "$ROOT" show -s --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)"
	if base="$(git -C "$ROOT" describe --tags --abbrev=0 --match 'v[0-9]*.[0-9]*.[0-9]*' HEAD 2>/dev/null)"; then
		IFS=. read -r major minor patch <<<"${base%%-*}"
		echo "$major.$minor.$((patch + 1))-0.$when-$hash"
	else
		echo "v0.0.0-$when-$hash"
	fi
}

if [ -n "${TELEGRAF_SRC:-}" ] && [ ! -f "$SRC/.copied" ]; then
	[ -f "$SRC/go.mod" ] || die "TELEGRAF_SRC=$SRC is not a Telegraf source tree (no go.mod)"
	mkdir -p "$SRC/.orig"
	cp "$SRC/go.mod" "$SRC/go.sum" "$SRC/.orig/"
	if [ -f "$SRC/plugins/outputs/all/librato.go" ]; then
		cp "$SRC/plugins/outputs/all/librato.go" "$SRC/.orig/"
	fi
	touch "$SRC/.copied"
fi
if [ ! -f "$SRC/.copied" ]; then
	say "copying telegraf@$VERSION source to $SRC"
	(cd "$ROOT" && go mod download "$TELEGRAF@$VERSION")
	cache="$(cd "$ROOT" && go env GOMODCACHE)/$TELEGRAF@$VERSION"
	rm -rf "$SRC" "$SRC.tmp"
	cp -r "$cache" "$SRC.tmp"
	chmod -R u+w "$SRC.tmp"
	mkdir "$SRC.tmp/.orig"
	cp "$SRC.tmp/go.mod" "$SRC.tmp/go.sum" "$SRC.tmp/.orig/"
	if [ -f "$SRC.tmp/plugins/outputs/all/librato.go" ]; then
		cp "$SRC.tmp/plugins/outputs/all/librato.go" "$SRC.tmp/.orig/"
	fi
	touch "$SRC.tmp/.copied"
	mv "$SRC.tmp" "$SRC"
fi
# Start from Telegraf's own files: custom_builder runs on them, and an
# earlier build's edits must not pile up.
cp "$SRC/.orig/go.mod" "$SRC/.orig/go.sum" "$SRC/"
if [ -f "$SRC/.orig/librato.go" ]; then
	cp "$SRC/.orig/librato.go" "$SRC/plugins/outputs/all/librato.go"
else
	rm -f "$SRC/plugins/outputs/all/librato.go" # ours, from an earlier build
fi
cd "$SRC"
builtin=true
if [ ! -d plugins/outputs/librato ]; then
	builtin=false
	say "Telegraf $VERSION has no built-in outputs.librato: adding this plugin"
fi

# without_librato prints a configuration file without its outputs.librato
# tables ([[outputs.librato]] and its subtables such as
# [outputs.librato.tagpass]), for a custom_builder that does not know the
# plugin. A table header is a line holding only [name] or [[name]].
without_librato() {
	awk '
		/^[[:space:]]*\[\[?[[:space:]]*[A-Za-z0-9_.-]+[[:space:]]*\]\]?[[:space:]]*(#.*)?$/ {
			skip = ($0 ~ /^[[:space:]]*\[\[?[[:space:]]*outputs\.librato[[:space:]]*[].]/)
		}
		!skip
	' "$1"
}

# inputs.librato_listener is not Telegraf's: custom_builder only knows the
# plugins it finds under plugins/inputs (an unknown one in a configuration
# is an error), so a package there names it. It is never compiled; the
# file in plugins/inputs/all imports this module's listener instead.
mkdir -p plugins/inputs/librato_listener
cat >plugins/inputs/librato_listener/librato_listener.go <<EOF
// Package librato_listener only names inputs.librato_listener for
// tools/custom_builder; the plugin is $MODULE/listener, imported by
// plugins/inputs/all/librato_listener.go.
package librato_listener

import (
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
)

func init() {
	inputs.Add("librato_listener", func() telegraf.Input { return nil })
}
EOF
cat >plugins/inputs/all/librato_listener.go <<EOF
//go:build !custom || inputs || inputs.librato_listener

package all

import _ "$MODULE/listener" // register plugin: this module's inputs.librato_listener
EOF

# Tags: Telegraf's custom_builder for configurations, then ours, then the
# caller's additions.
if $all; then
	tags=""
	say "building EVERY Telegraf plugin: about 10 minutes and 440 MB on 2 cores"
elif [ ${#configs[@]} -gt 0 ]; then
	say "choosing plugins with Telegraf's tools/custom_builder (one to two minutes)"
	builder_configs=("${configs[@]}")
	if ! $builtin; then
		# Our copies, as --config files: custom_builder reads *.conf of a
		# directory, which the copies mirror.
		stripped="$SRC/.configs"
		rm -rf "$stripped" && mkdir -p "$stripped"
		builder_configs=()
		n=0
		for ((i = 1; i < ${#configs[@]}; i += 2)); do
			if [ "${configs[i - 1]}" = --config ]; then
				files=("${configs[i]}")
			else
				files=("${configs[i]}"/*.conf)
			fi
			for f in "${files[@]}"; do
				[ -f "$f" ] || continue
				n=$((n + 1))
				without_librato "$f" >"$stripped/$n.conf"
				builder_configs+=(--config "$stripped/$n.conf")
			done
		done
	fi
	# custom_builder logs "Importing configuration file(s)..." even with
	# --quiet: its stderr is shown without that line, and whole on failure.
	builder_err="$(mktemp)"
	if ! chosen="$(go run ./tools/custom_builder --dry-run --quiet --tags "${builder_configs[@]}" 2>"$builder_err")"; then
		cat "$builder_err" >&2
		rm -f "$builder_err"
		die "tools/custom_builder could not read the configuration (output above)"
	fi
	grep -v 'Importing configuration file(s)\.\.\.$' "$builder_err" >&2 || true
	rm -f "$builder_err"
	tags="$(printf '%s\n' "$chosen" | sed -n 's/^Build tags: //p')"
	[ -n "$tags" ] || die "tools/custom_builder printed no build tags: $chosen"
	tags="$tags,$ALWAYS_TAGS"
else
	tags="$DEFAULT_TAGS,$ALWAYS_TAGS"
fi
if [ -n "${TELEGRAF_TAGS:-}" ]; then
	if $all; then
		say "TELEGRAF_TAGS ignored with --all (every plugin is built)"
	else
		tags="$tags,$(printf '%s' "$TELEGRAF_TAGS" | tr ' ' ',')"
	fi
fi
# Sorted, without duplicates or empty entries.
tags="$(printf '%s' "$tags" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
[ -n "$tags" ] && say "build tags: $tags"

# This module goes in as a copy whose go.mod does not require Telegraf: a
# dependency requiring the main module makes Go load the complete module
# graph, and for v1.40.1 that fails (the proxy no longer serves the go.mod
# of github.com/lxc/incus/v7 v7.4.0, which a normal build never reads).
stage="$SRC/_librato" # "_": not part of Telegraf's ./...
rm -rf "$stage"
mkdir -p "$stage"
(cd "$ROOT" && tar -cf - --exclude=./build --exclude=./.git --exclude='*_test.go' --exclude=testdata .) |
	tar -xf - -C "$stage"
(cd "$stage" && go mod edit -droprequire="$TELEGRAF")
cat >plugins/outputs/all/librato.go <<EOF
//go:build !custom || outputs || outputs.librato

package all

import _ "$MODULE" // register plugin: replaces the built-in outputs.librato
EOF
go mod edit -require="$MODULE@$(module_version)" -replace="$MODULE=./_librato"

say "building $OUT (Telegraf $VERSION)"
# Telegraf's go.mod must already hold every requirement of this module at
# the same or a newer version (true for the releases in the README); Go
# refuses the build otherwise rather than change Telegraf's versions.
# The version names this module's build too (telegraf --version), so a bug
# report says which plugin it came from.
CGO_ENABLED=0 go build -tags "$tags" \
	-ldflags "-X $TELEGRAF/internal.Version=${VERSION#v}-librato-$(module_version)" -o "$OUT" ./cmd/telegraf

# The binary must carry this plugin, not the built-in one or none at all.
plugins="$("$OUT" plugins outputs)" || die "$OUT plugins outputs failed"
printf '%s\n' "$plugins" | grep -qx 'outputs.librato' ||
	die "$OUT has no outputs.librato (its outputs: $(printf '%s' "$plugins" | paste -sd' ' -)); check TELEGRAF_TAGS"
usage="$("$OUT" --usage librato)" || die "$OUT --usage librato failed"
printf '%s\n' "$usage" | grep -Eq '^[[:space:]]*#?[[:space:]]*api[[:space:]]*=' ||
	die "$OUT has Telegraf's built-in outputs.librato, not this module's (no \"api\" option in --usage librato)"
# Telegraf prints the sample config after an empty line, trailing spaces cut.
[ "$(printf '%s\n' "$usage" | sed '1{/^$/d;}')" = "$(sed 's/[[:space:]]*$//' "$ROOT/sample.conf")" ] ||
	die "$OUT --usage librato differs from sample.conf"
case ",$tags," in
*,inputs.librato_listener,* | ,,)
	printf '%s\n' "$("$OUT" plugins inputs)" | grep -qx 'inputs.librato_listener' ||
		die "$OUT has no inputs.librato_listener although it was asked for"
	say "inputs.librato_listener is in"
	;;
esac
say "done: $OUT (outputs.librato is this module's)"
