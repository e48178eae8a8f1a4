#!/usr/bin/env bash
# Create (or reuse) a kind cluster for machines with Docker, and give it what the e2e suite
# expects from the local test bed: the pinned upstream CRDs (hack/fetch-crds.sh), a kwok
# controller with its default stages (from the pinned sigs.k8s.io/kwok Go module) and the same
# 2 CPU + 2 GPU fake nodes. Prints `export TWP_E2E_KUBECONFIG=...` on stdout, logs on stderr.
#
# Needs: docker, kubectl, go (module downloads; builds kind if absent), python with PyYAML.
# Env: KIND_CLUSTER_NAME (default workerpools), KIND_NODE_IMAGE (optional node image),
#      PYTHON (default .venv/bin/python, else python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
name="${KIND_CLUSTER_NAME:-workerpools}"
kubeconfig="$cache/clusters/kind-$name/kubeconfig"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
log() { printf '[kind-up] %s\n' "$*" >&2; }

for tool in docker kubectl go "$python"; do
  command -v "$tool" >/dev/null || { log "missing required tool: $tool"; exit 1; }
done
# kind itself is built from the pinned Go module when it is not installed.
kind=$(command -v kind || true)
if [ -z "$kind" ]; then
  kind="$cache/bin/kind-$KIND_VERSION"
  if [ ! -x "$kind" ]; then
    log "installing kind $KIND_VERSION"
    mkdir -p "$cache/bin/.kind-build"
    GOBIN="$cache/bin/.kind-build" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION"
    mv "$cache/bin/.kind-build/kind" "$kind"
  fi
fi
kind() { "$kind" "$@"; }

if kind get clusters 2>/dev/null | grep -qx "$name"; then
  log "reusing kind cluster $name"
else
  log "creating kind cluster $name"
  kind create cluster --name "$name" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s >&2
fi
mkdir -p "$(dirname "$kubeconfig")"
kind get kubeconfig --name "$name" >"$kubeconfig"
chmod 600 "$kubeconfig"
k() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# kwok controller, only managing nodes annotated kwok.x-k8s.io/node=fake, pinned to the real
# control-plane node so it never lands on a fake node it is supposed to simulate.
kwokdir=$(cd / && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
[ -d "$kwokdir" ] || { log "cannot download sigs.k8s.io/kwok@$KWOK_VERSION"; exit 1; }
log "installing kwok $KWOK_VERSION controller and stages"
# The upstream kustomization leaves the image untagged; pin it to the module version.
k kustomize "$kwokdir/kustomize/kwok" |
  sed -E "s#^([[:space:]]*image: [^:]*/kwok/kwok)[[:space:]]*\$#\\1:$KWOK_VERSION#" |
  k apply --server-side --force-conflicts -f - >&2
k -n kube-system patch deployment kwok-controller --type merge -p '{"spec":{"template":{"spec":{
  "nodeSelector":{"node-role.kubernetes.io/control-plane":""},
  "tolerations":[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"}]}}}}' >&2
k wait --for=condition=Established --timeout=60s crd/stages.kwok.x-k8s.io >&2
k apply --server-side --force-conflicts -k "$kwokdir/kustomize/stage/fast" >&2
k -n kube-system rollout status deployment/kwok-controller --timeout=180s >&2

log "installing third-party CRDs and fake nodes"
(cd "$root" && "$python" -m testbed provision --kubeconfig "$kubeconfig" --fake-nodes)

log "ready: kubectl --kubeconfig $kubeconfig get nodes"
printf 'export TWP_E2E_KUBECONFIG=%s\n' "$kubeconfig"
