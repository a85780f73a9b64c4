#!/usr/bin/env bash
# Builds the execd route:
#   build/librato-execd   this module's external-plugin binary (cmd/librato-execd)
#   build/telegraf-execd  a stock Telegraf v1.39.3 (go install, no source copy)
#                         with just the plugins the execd route and its tests use
#
#   scripts/build-execd.sh [OUTDIR]         # default: build
set -euo pipefail

TELEGRAF_VERSION=v1.39.3
TAGS=custom,inputs.file,inputs.mock,parsers.influx,outputs.execd,serializers.influx
# Stamp the Telegraf version as a release does: deprecation notices and the
# config loader then behave as in a stock Telegraf.
LDFLAGS="-X github.com/influxdata/telegraf/internal.Version=${TELEGRAF_VERSION#v}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="${1:-$ROOT/build}"
case "$OUTDIR" in /*) ;; *) OUTDIR="$PWD/$OUTDIR" ;; esac

mkdir -p "$ROOT/build" "$OUTDIR"

echo "build-execd: building $OUTDIR/librato-execd" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -ldflags "$LDFLAGS" -o "$OUTDIR/librato-execd" ./cmd/librato-execd)

echo "build-execd: building $OUTDIR/telegraf-execd" >&2
gobin="$(mktemp -d "$ROOT/build/gobin.XXXXXX")"
trap 'rm -rf "$gobin"' EXIT
(cd "$gobin" && CGO_ENABLED=0 GOBIN="$gobin" go install -tags "$TAGS" -ldflags "$LDFLAGS" \
	"github.com/influxdata/telegraf/cmd/telegraf@$TELEGRAF_VERSION")
mv -f "$gobin/telegraf" "$OUTDIR/telegraf-execd"
echo "build-execd: done" >&2
