#!/usr/bin/env bash
# Build the live-monitoring stack of the alert e2e test (tests/e2e/test_alerts_live.py) from
# its Go modules, at the versions pinned in hack/versions.env, into the same cache folder as
# hack/build-tools.sh (reused when present):
#   prometheus                  github.com/prometheus/prometheus/cmd/prometheus (the server that
#                               scrapes the operator and the workers and evaluates the chart's
#                               rules; only the Kubernetes service discovery, no web UI assets)
#   prometheus-operator         .../prometheus-operator/cmd/operator (reconciles the chart's
#                               ServiceMonitor and PrometheusRule into that server's config)
#   kube-state-metrics          k8s.io/kube-state-metrics/v2 (the pods' restart counts that
#                               TemporalWorkerPoolWorkerRestarts reads)
# prometheus-operator's go.mod replaces its own submodules, so it is built from a consumer
# module that requires it and its two submodules at the same version (`go install pkg@v` refuses replaces).
# Also copies every monitoring.coreos.com CRD (the Prometheus kind included) into
# <cache>/crds/prometheus-operator-all-<version>. The three builds run in parallel. Prints the bin folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/tools/bin"
mkdir -p "$bin" "$cache/crds"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-monitoring] %s\n' "$*" >&2; }

# Binaries carry their version in the name, so a bump in versions.env rebuilds.
prometheus_bin="$bin/prometheus-$PROMETHEUS_VERSION"
operator_bin="$bin/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
ksm_bin="$bin/kube-state-metrics-$KUBE_STATE_METRICS_VERSION"
version_pkg=github.com/prometheus/common/version

build_prometheus() {
  local start; start=$(date +%s)
  local v="3.${PROMETHEUS_VERSION#v0.3}"  # module v0.316.0 is Prometheus 3.16.0
  # remove_all_sd + enable_kubernetes_sd: prometheus-operator's scrape configs use only the
  # Kubernetes discovery; leaving out the cloud ones saves minutes of build.
  GOBIN="$cache/tools/.prometheus" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X $version_pkg.Version=$v -X $version_pkg.Branch=release -X $version_pkg.Revision=module" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
  mv "$cache/tools/.prometheus/prometheus" "$prometheus_bin"
  log "prometheus $PROMETHEUS_VERSION ($v) built in $(( $(date +%s) - start )) s"
}

build_prometheus_operator() {
  local start; start=$(date +%s)
  local mod=github.com/prometheus-operator/prometheus-operator v=$PROMETHEUS_OPERATOR_VERSION
  local work="$cache/build/prometheus-operator-$v"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init workerpools.io/prometheus-operator-build >/dev/null 2>&1
  go mod edit -require="$mod@$v" -require="$mod/pkg/apis/monitoring@$v" -require="$mod/pkg/client@$v"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
)
GO
  go mod tidy -e >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w -X $version_pkg.Version=${v#v} -X $version_pkg.Revision=module" \
    -o "$work/out/operator" "$mod/cmd/operator"
  mv "$work/out/operator" "$operator_bin"
  log "prometheus-operator $v built in $(( $(date +%s) - start )) s"
}

build_kube_state_metrics() {
  local start; start=$(date +%s)
  local v=$KUBE_STATE_METRICS_VERSION pkg=github.com/prometheus/common/version
  # `go install pkg@version` builds with its own go.mod and go.sum (no replace lines).
  GOBIN="$cache/tools/.kube-state-metrics" go install -trimpath \
    -ldflags "-s -w -X $pkg.Version=${v#v} -X $pkg.Revision=module" "k8s.io/kube-state-metrics/v2@$v"
  mv "$cache/tools/.kube-state-metrics/kube-state-metrics" "$ksm_bin"
  log "kube-state-metrics $v built in $(( $(date +%s) - start )) s"
}

copy_crds() {
  local v=$PROMETHEUS_OPERATOR_VERSION dest="$cache/crds/prometheus-operator-all-$PROMETHEUS_OPERATOR_VERSION"
  [ -f "$dest/.complete" ] && return 0
  local src tmp
  src=$( (cd / && go mod download -json "github.com/prometheus-operator/prometheus-operator@$v") \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -d "$src/example/prometheus-operator-crd" ] || { log "no CRDs in prometheus-operator@$v"; return 1; }
  tmp=$(mktemp -d "$cache/crds/.tmp-prometheus-operator-all.XXXXXX")
  install -m 0644 "$src"/example/prometheus-operator-crd/*.yaml "$tmp/"
  chmod 0755 "$tmp" && touch "$tmp/.complete" && rm -rf "$dest" && mv "$tmp" "$dest"
  log "monitoring.coreos.com CRDs in $dest"
}

copy_crds
pids=()
[ -x "$prometheus_bin" ] || { build_prometheus & pids+=($!); }
[ -x "$operator_bin" ] || { build_prometheus_operator & pids+=($!); }
[ -x "$ksm_bin" ] || { build_kube_state_metrics & pids+=($!); }
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" = 0 ] || { log "a monitoring tool failed to build (see above)"; exit 1; }
# Stable names for the tests and for people.
ln -sfn "$(basename "$prometheus_bin")" "$bin/prometheus"
ln -sfn "$(basename "$operator_bin")" "$bin/prometheus-operator"
ln -sfn "$(basename "$ksm_bin")" "$bin/kube-state-metrics"
echo "$bin"
