#!/usr/bin/env bash
# Build metrics-server (the resource metrics API server, metrics.k8s.io) from the Go module
# sigs.k8s.io/metrics-server at METRICS_SERVER_VERSION (hack/versions.env), into a cache folder
# outside the repository (reused when present), like hack/build-keda.sh. The module has no
# replace lines, so `go install pkg@version` builds it with its own go.mod and go.sum;
# CGO_ENABLED=0, -trimpath, version ldflags as in metrics-server's Makefile.
# Cold: a few minutes on 2 cores. Prints the bin folder (metrics-server).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/metrics-server/$METRICS_SERVER_VERSION/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-metrics-server] %s\n' "$*" >&2; }

if [ -x "$bin/metrics-server" ]; then
  echo "$bin"
  exit 0
fi
start=$(date +%s)
mod="sigs.k8s.io/metrics-server"
work="$cache/build/metrics-server-$METRICS_SERVER_VERSION"
rm -rf "$work" && mkdir -p "$work"
# metrics-server's Makefile stamps the version into client-go's version package.
pkg=k8s.io/client-go/pkg/version
ldflags="-s -w -X $pkg.gitVersion=$METRICS_SERVER_VERSION -X $pkg.gitCommit=module -X $pkg.gitTreeState=clean"
log "building $mod@$METRICS_SERVER_VERSION"
(cd / && GOBIN="$work" go install -trimpath -ldflags "$ldflags" "$mod/cmd/metrics-server@$METRICS_SERVER_VERSION")
mv "$work/metrics-server" "$bin/metrics-server"
log "metrics-server $METRICS_SERVER_VERSION built in $(( $(date +%s) - start )) s"
echo "$bin"
