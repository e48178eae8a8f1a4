#!/usr/bin/env bash
# What the bed's real node (testbed/realnode.py) needs besides the kubelet, which
# hack/build-controlplane.sh builds with the control plane: Debian's containerd, runc and CNI
# plugins (installed with apt-get as root) and the sandbox ("pause") binary, a tiny static Go
# program built into the cache folder, because no registry here serves registry.k8s.io/pause.
# Without root it says so and exits 0: the real-node tests then skip locally (and fail under
# CI=true, so a green CI run always means they ran).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
log() { printf '[setup-realnode] %s\n' "$*" >&2; }

missing=()
[ -x /usr/bin/containerd ] || missing+=(containerd)
[ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${missing[*]} and not root: the real-node tests will be skipped"
    exit 0
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

pause="$cache/realnode/bin/pause"
if [ ! -x "$pause" ]; then
  start=$(date +%s)
  work="$cache/build/pause"
  rm -rf "$work" && mkdir -p "$work" "$(dirname "$pause")" && cd "$work"
  cat > main.go <<'GO'
// pause holds a pod's namespaces: it sleeps until SIGTERM/SIGINT and reaps nothing else.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
GO
  GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod init workerpools.io/pause >/dev/null 2>&1
  CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" -o "$pause" .
  log "pause built in $(( $(date +%s) - start )) s"
fi
log "real node prerequisites ready (containerd $(/usr/bin/containerd --version | awk '{print $3}'))"
