#!/usr/bin/env bash
# Build KEDA's operator and its metrics API server (the adapter serving external.metrics.k8s.io)
# from the Go module github.com/kedacore/keda/v2 at KEDA_VERSION (hack/versions.env), into a
# cache folder outside the repository (reused when present), like hack/build-controlplane.sh:
# a consumer module that copies KEDA's own replace line, CGO_ENABLED=0, -trimpath.
# Cold: about 10 minutes on 2 cores. Prints the bin folder (keda-operator, keda-adapter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/keda/$KEDA_VERSION/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-keda] %s\n' "$*" >&2; }

if [ -x "$bin/keda-operator" ] && [ -x "$bin/keda-adapter" ]; then
  echo "$bin"
  exit 0
fi
start=$(date +%s)
mod="github.com/kedacore/keda/v2"
work="$cache/build/keda-$KEDA_VERSION"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
go mod init workerpools.io/keda-build >/dev/null 2>&1
gomod=$(go mod download -json "$mod@$KEDA_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
# KEDA's go.mod has a replace line (nexus-proto-annotations); `go install pkg@v` refuses modules
# with replaces, so each one is copied into this consumer module.
go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    rhs = new["Path"] + ("@" + new["Version"] if new.get("Version") else "")
    print(lhs + "=" + rhs)' | while read -r r; do go mod edit -replace="$r"; done
go mod edit -require="$mod@$KEDA_VERSION"
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
GO
log "resolving $mod@$KEDA_VERSION"
go mod tidy -e >/dev/null 2>&1 || true
pkg=github.com/kedacore/keda/v2/version
ldflags="-s -w -X $pkg.Version=${KEDA_VERSION#v} -X $pkg.GitCommit=module"
log "building keda operator and adapter"
go build -trimpath -ldflags "$ldflags" -o "$work/out/" "$mod/cmd/operator" "$mod/cmd/adapter"
mv "$work/out/operator" "$bin/keda-operator"
mv "$work/out/adapter" "$bin/keda-adapter"
log "keda $KEDA_VERSION built in $(( $(date +%s) - start )) s"
echo "$bin"
