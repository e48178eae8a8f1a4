#!/usr/bin/env bash
# Build an OpenTelemetry Collector (core receivers/exporters only) from its Go modules with the
# upstream OpenTelemetry Collector Builder (go.opentelemetry.io/collector/cmd/builder, "ocb"), at
# OTELCOL_VERSION (hack/versions.env), into a cache folder outside the repository (reused when
# present), like hack/build-metrics-server.sh. The tracing e2e test runs it on loopback:
#   receivers  otlp   (gRPC and HTTP; what the worker runtime's OTLP exporter sends to)
#   exporters  file   (OTLP JSON lines the test reads), debug
# CGO_ENABLED=0, -trimpath, stripped (the builder's defaults without debug_compilation).
# Prints the bin folder (otelcol-workerpools).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/otelcol/$OTELCOL_VERSION/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-otelcol] %s\n' "$*" >&2; }

if [ -x "$bin/otelcol-workerpools" ]; then
  echo "$bin"
  exit 0
fi
start=$(date +%s)
work="$cache/build/otelcol-$OTELCOL_VERSION"
rm -rf "$work" && mkdir -p "$work"
# The builder and the core components share one version; the file exporter lives in
# opentelemetry-collector-contrib, released with the same minor version.
(cd / && GOBIN="$work" go install -trimpath -ldflags "-s -w" \
  "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION")
cat > "$work/builder-config.yaml" <<YAML
dist:
  name: otelcol-workerpools
  description: OpenTelemetry Collector for the worker pools tracing test (OTLP in, file out)
  output_path: $work/dist
  version: ${OTELCOL_VERSION#v}
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver $OTELCOL_VERSION
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter $OTELCOL_VERSION
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter $OTELCOL_VERSION
YAML
log "building otelcol-workerpools with builder $OTELCOL_VERSION"
# The builder's own `go mod tidy` fails here: it also resolves the components' test imports,
# and the proxy does not serve one of those (contrib's otlpencodingextension at this version, a
# test-only dependency of the file exporter). So the builder only generates the sources
# (main.go, components.go), and the module is made by hand: the components and the collector
# modules main.go imports pinned (the 0.x ones at OTELCOL_VERSION, the 1.x ones released with it
# at OTELCOL_STABLE_VERSION), the rest resolved by `go build -mod=mod` (no tests).
"$work/builder" --config "$work/builder-config.yaml" --skip-get-modules --skip-compilation
cd "$work/dist"
go mod init workerpools.io/otelcol-workerpools >/dev/null 2>&1
go mod edit \
  -require="go.opentelemetry.io/collector/receiver/otlpreceiver@$OTELCOL_VERSION" \
  -require="go.opentelemetry.io/collector/exporter/debugexporter@$OTELCOL_VERSION" \
  -require="github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter@$OTELCOL_VERSION" \
  -require="go.opentelemetry.io/collector/otelcol@$OTELCOL_VERSION" \
  -require="go.opentelemetry.io/collector/connector@$OTELCOL_VERSION" \
  -require="go.opentelemetry.io/collector/service@$OTELCOL_VERSION" \
  -require="go.opentelemetry.io/collector/processor@$OTELCOL_STABLE_VERSION"
for p in env file http https yaml; do
  go mod edit -require="go.opentelemetry.io/collector/confmap/provider/${p}provider@$OTELCOL_STABLE_VERSION"
done
go build -trimpath -ldflags "-s -w" -o "$bin/.otelcol-workerpools" .
mv "$bin/.otelcol-workerpools" "$bin/otelcol-workerpools"
log "otelcol $OTELCOL_VERSION built in $(( $(date +%s) - start )) s"
echo "$bin"
