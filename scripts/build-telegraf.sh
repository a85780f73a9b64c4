#!/usr/bin/env bash
# Builds Telegraf v1.39.3 with this module as its outputs.librato, REPLACING
# the built-in plugin (the registry is a map keyed by name: keeping the
# built-in import beside ours would let it win).
#
#   scripts/build-telegraf.sh [OUTPUT]      # default: build/telegraf-librato
#
# TELEGRAF_TAGS overrides the build tags; TELEGRAF_TAGS= (empty) builds every
# Telegraf plugin, with this module as outputs.librato.
#
# Telegraf must be the main module, so its source is copied from the module
# cache to build/telegraf-src-<version> (kept for quick rebuilds), its
# plugins/outputs/all/librato.go is pointed at this module, and go.mod gets a
# replace to this checkout. Rerunning is safe and rebuilds in seconds.
set -euo pipefail

TELEGRAF_VERSION=v1.39.3
MODULE=github.com/seed-d22a899f/librato
TAGS=${TELEGRAF_TAGS-custom,inputs.file,inputs.mock,inputs.http_listener_v2,parsers.influx,parsers.json,parsers.json_v2,outputs.librato,migrations}
LDFLAGS="-X github.com/influxdata/telegraf/internal.Version=${TELEGRAF_VERSION#v}-librato"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/build/telegraf-librato}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
SRC="$ROOT/build/telegraf-src-$TELEGRAF_VERSION"

mkdir -p "$ROOT/build" "$(dirname "$OUT")"
touch "$ROOT/.gitignore"
grep -qx 'build/' "$ROOT/.gitignore" || echo 'build/' >>"$ROOT/.gitignore"

if [ ! -f "$SRC/.copied" ]; then
	echo "build-telegraf: copying telegraf@$TELEGRAF_VERSION source to $SRC" >&2
	(cd "$ROOT" && go mod download "github.com/influxdata/telegraf@$TELEGRAF_VERSION")
	cache="$(cd "$ROOT" && go env GOMODCACHE)/github.com/influxdata/telegraf@$TELEGRAF_VERSION"
	rm -rf "$SRC" "$SRC.tmp"
	cp -r "$cache" "$SRC.tmp"
	chmod -R u+w "$SRC.tmp"
	touch "$SRC.tmp/.copied"
	mv "$SRC.tmp" "$SRC"
fi

cat >"$SRC/plugins/outputs/all/librato.go" <<EOF
//go:build !custom || outputs || outputs.librato

package all

import _ "$MODULE" // register plugin: replaces the built-in outputs.librato
EOF

cd "$SRC"
go mod edit -require="$MODULE@v0.0.0" -replace="$MODULE=$ROOT"

echo "build-telegraf: building $OUT" >&2
# -mod=mod lets go.mod/go.sum of the copy follow this module's requirements
# (a no-op while they are a subset of Telegraf's, as they should be).
CGO_ENABLED=0 go build -mod=mod -tags "$TAGS" -ldflags "$LDFLAGS" -o "$OUT" ./cmd/telegraf
echo "build-telegraf: done: $OUT" >&2
