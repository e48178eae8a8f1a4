#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, etcd, kwok and
# kwokctl from Go modules at the versions pinned in hack/versions.env, into a cache folder outside
# the repository (reused when present), because no registry here ships these binaries.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/k8s/$KUBERNETES_VERSION/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-controlplane] %s\n' "$*" >&2; }

need() { for b in "$@"; do [ -x "$bin/$b" ] || return 0; done; return 1; }
# Version ldflags of every Kubernetes binary (what `kubectl version` and the node report).
minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

if need kube-apiserver kube-controller-manager kube-scheduler; then
  start=$(date +%s)
  work="$cache/build/kubernetes-$KUBERNETES_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init workerpools.io/controlplane-build >/dev/null 2>&1
  staging="v0.${KUBERNETES_VERSION#v1.}"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  # Every k8s.io/X => ./staging/src/k8s.io/X line becomes a replace to the published module.
  for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod"); do
    go mod edit -replace="$m=$m@$staging"
  done
  go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  log "resolving k8s.io/kubernetes@$KUBERNETES_VERSION (staging $staging)"
  go mod tidy -e >/dev/null 2>&1 || true
  go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
  log "building kube-apiserver kube-controller-manager kube-scheduler"
  go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
  log "kubernetes built in $(( $(date +%s) - start )) s"
fi

# kubectl at the server's version: tests and kwokctl take it from PATH, and a fresh machine
# has none (or one too old).
if need kubectl; then
  start=$(date +%s)
  cd "$cache/build/kubernetes-$KUBERNETES_VERSION"
  go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$bin/" k8s.io/kubernetes/cmd/kubectl
  log "kubectl built in $(( $(date +%s) - start )) s"
fi

# kubelet for the bed's real node (testbed/realnode.py), from the same consumer module.
if need kubelet; then
  start=$(date +%s)
  cd "$cache/build/kubernetes-$KUBERNETES_VERSION"
  go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$bin/" k8s.io/kubernetes/cmd/kubelet
  log "kubelet built in $(( $(date +%s) - start )) s"
fi

if need etcd; then
  start=$(date +%s)
  work="$cache/build/etcd-$ETCD_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init workerpools.io/etcd-build >/dev/null 2>&1
  # `go install pkg@v` refuses modules with replace lines; a consumer module builds it fine.
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
  log "etcd built in $(( $(date +%s) - start )) s"
fi

if need kwok kwokctl; then
  start=$(date +%s)
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  log "kwok built in $(( $(date +%s) - start )) s"
fi
echo "$bin"
