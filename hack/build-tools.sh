#!/usr/bin/env bash
# Build the chart, alert and GitOps tools the tests run from their Go modules, at the versions
# pinned in hack/versions.env, into a cache folder outside the repository (reused when present):
#   helm      helm.sh/helm/v3/cmd/helm                      (chart lint/template/install tests)
#   promtool  github.com/prometheus/prometheus/cmd/promtool (alert unit tests; no SD plugins)
#   kstatus   hack/kstatus/main.go on sigs.k8s.io/cli-utils (Flux's health reading of a pool)
#             and helm-controller's API types (strict HelmRelease validation)
#   metrics-server  hack/build-metrics-server.sh (metrics.k8s.io for the HPA e2e test; own folder)
#   otelcol   hack/build-otelcol.sh (an OpenTelemetry Collector for the tracing test; own folder)
# The five builds run in parallel. Prints the bin folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/tools/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-tools] %s\n' "$*" >&2; }

# Binaries carry their version in the name, so a bump in versions.env rebuilds.
helm_bin="$bin/helm-$HELM_VERSION"
promtool_bin="$bin/promtool-$PROMETHEUS_VERSION"
kstatus_bin="$bin/kstatus-$CLI_UTILS_VERSION-$FLUX_HELM_API_VERSION-$(sha256sum "$here/kstatus/main.go" | cut -c1-12)"

build_helm() {
  local start; start=$(date +%s)
  local pkg=helm.sh/helm/v3/internal/version gomod minor
  # Like helm's Makefile: the default Kubernetes version of `helm template`/`lint` follows the
  # client-go it is built with (v0.37.x -> 1.37); unset, it would claim 1.20.
  gomod=$(cd / && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod")
  local kv="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  kv="$kv -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  # `go install pkg@version` builds with helm's own go.mod and go.sum (it has no replace lines).
  GOBIN="$cache/tools/.helm" go install -trimpath \
    -ldflags "-s -w -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean $kv" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$cache/tools/.helm/helm" "$helm_bin"
  log "helm $HELM_VERSION built in $(( $(date +%s) - start )) s"
}

build_promtool() {
  local start; start=$(date +%s)
  local pkg=github.com/prometheus/common/version
  local v="3.${PROMETHEUS_VERSION#v0.3}"  # module v0.316.0 is Prometheus 3.16.0
  # remove_all_sd: promtool only checks and unit-tests rules here; no service discovery plugins.
  GOBIN="$cache/tools/.promtool" go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X $pkg.Version=$v -X $pkg.Branch=release -X $pkg.Revision=module" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  mv "$cache/tools/.promtool/promtool" "$promtool_bin"
  log "promtool $PROMETHEUS_VERSION ($v) built in $(( $(date +%s) - start )) s"
}

build_kstatus() {
  local start; start=$(date +%s)
  local work="$cache/build/kstatus-$CLI_UTILS_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init workerpools.io/kstatus >/dev/null 2>&1
  cp "$here/kstatus/main.go" .
  go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION" \
    "github.com/fluxcd/helm-controller/api@$FLUX_HELM_API_VERSION" >/dev/null 2>&1
  go mod tidy >/dev/null 2>&1
  go build -trimpath -ldflags "-s -w" -o "$kstatus_bin" .
  log "kstatus (cli-utils $CLI_UTILS_VERSION) built in $(( $(date +%s) - start )) s"
}

# The upstream CRDs of the GitOps examples (examples/gitops/), out of the Go module downloads:
# tests/unit/test_gitops.py validates the examples against their openAPIV3Schema.
fetch_gitops_crds() {
  local dest="$cache/crds/gitops-$ARGOCD_VERSION-$FLUX_KUSTOMIZE_VERSION-$FLUX_SOURCE_VERSION"
  [ -f "$dest/.complete" ] && return 0
  local tmp; tmp=$(mktemp -d "$cache/crds/.tmp-gitops.XXXXXX")
  local spec mod file zip
  for spec in \
    "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION manifests/crds/application-crd.yaml" \
    "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_VERSION config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml" \
    "github.com/fluxcd/source-controller@$FLUX_SOURCE_VERSION config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml"; do
    mod=${spec% *}; file=${spec#* }
    # Read the file out of the module zip: extraction is refused for modules that ask for a
    # newer Go than the local one (Argo CD v3.6 asks for 1.27), downloading is not.
    zip=$( (cd / && go mod download -json "$mod" || true) | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",*$/\1/p')
    python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
      "$zip" "$mod/$file" > "$tmp/$(basename "$file")" || { log "missing $file in $mod"; rm -rf "$tmp"; return 1; }
  done
  chmod 0755 "$tmp" && touch "$tmp/.complete" && rm -rf "$dest" && mv "$tmp" "$dest"
  log "GitOps CRDs in $dest"
}

mkdir -p "$cache/crds"
fetch_gitops_crds

pids=()
[ -x "$helm_bin" ] || { build_helm & pids+=($!); }
[ -x "$promtool_bin" ] || { build_promtool & pids+=($!); }
[ -x "$kstatus_bin" ] || { build_kstatus & pids+=($!); }
# Its own cached script (a no-op when built), like hack/build-keda.sh; stdout is its bin folder.
bash "$here/build-metrics-server.sh" >/dev/null & pids+=($!)
bash "$here/build-otelcol.sh" >/dev/null & pids+=($!)
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" = 0 ] || { log "a tool failed to build (see above)"; exit 1; }
# Stable names for the tests and for people: bin/helm, bin/promtool, bin/kstatus.
ln -sfn "$(basename "$helm_bin")" "$bin/helm"
ln -sfn "$(basename "$promtool_bin")" "$bin/promtool"
ln -sfn "$(basename "$kstatus_bin")" "$bin/kstatus"
echo "$bin"
