#!/usr/bin/env bash
# Copy the upstream third-party CRDs the operator creates objects of (prometheus-operator's
# ServiceMonitor/PrometheusRule, KEDA's ScaledObject/TriggerAuthentication) out of the Go module
# downloads at the versions pinned in hack/versions.env, so the test bed validates our objects
# against the real schemas instead of hand-written copies that drift.
# Prints one folder per project: <cache>/crds/<name>-<version>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
log() { printf '[fetch-crds] %s\n' "$*" >&2; }

# module_dir MODULE@VERSION -> the extracted module folder in the Go module cache.
module_dir() {
  local json dir err
  # Outside any module so a go.mod of the caller's working directory cannot interfere.
  json=$(cd / && go mod download -json "$1") || true
  dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    err=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p')
    log "cannot download $1: ${err:-unknown error} (fix the pin in hack/versions.env)"
    return 1
  fi
  printf '%s\n' "$dir"
}

# copy_crds NAME VERSION SRC_DIR FILE... : copy into <cache>/crds/NAME-VERSION (atomically).
copy_crds() {
  local name=$1 version=$2 src=$3; shift 3
  local dest="$cache/crds/$name-$version"
  if [ -f "$dest/.complete" ]; then printf '%s\n' "$dest"; return 0; fi
  local tmp; tmp=$(mktemp -d "$cache/crds/.tmp-$name.XXXXXX")
  for f in "$@"; do
    [ -f "$src/$f" ] || { log "missing $f in $src"; rm -rf "$tmp"; return 1; }
    install -m 0644 "$src/$f" "$tmp/$(basename "$f")"
  done
  chmod 0755 "$tmp" && touch "$tmp/.complete"
  rm -rf "$dest" && mv "$tmp" "$dest"
  log "copied $# CRDs into $dest"
  printf '%s\n' "$dest"
}

mkdir -p "$cache/crds"
promdir=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
copy_crds prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" "$promdir/example/prometheus-operator-crd" \
  monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml
kedadir=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
# All of KEDA's CRDs: its operator (tests/e2e/test_keda.py) watches ScaledJobs and
# CloudEventSources too and does not start without them.
copy_crds keda "$KEDA_VERSION" "$kedadir/config/crd/bases" \
  keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml \
  keda.sh_clustertriggerauthentications.yaml keda.sh_scaledjobs.yaml \
  eventing.keda.sh_cloudeventsources.yaml eventing.keda.sh_clustercloudeventsources.yaml
