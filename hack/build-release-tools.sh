#!/usr/bin/env bash
# Build the release tools from their Go modules, at the versions pinned in hack/versions.env,
# into the same cache folder as hack/build-tools.sh (reused when present):
#   crane   github.com/google/go-containerregistry/cmd/crane (push, copy; `crane registry serve`
#           is a real OCI registry, the one the release e2e test runs on loopback)
#   cosign  github.com/sigstore/cosign/v2/cmd/cosign         (sign and verify images and chart)
#   syft    github.com/anchore/syft/cmd/syft                 (an SPDX SBOM per image)
# None of the three has replace lines, so `go install pkg@version` builds each with its own
# go.mod and go.sum. The three builds run in parallel. Prints the bin folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
bin="$cache/tools/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-release-tools] %s\n' "$*" >&2; }

# Binaries carry their version in the name, so a bump in versions.env rebuilds.
crane_bin="$bin/crane-$GGCR_VERSION"
cosign_bin="$bin/cosign-$COSIGN_VERSION"
syft_bin="$bin/syft-$SYFT_VERSION"

# go_install NAME PACKAGE@VERSION DEST LDFLAGS: build into a private GOBIN, then move into place
# (a half-built binary never carries the final name).
go_install() {
  local name=$1 pkg=$2 dest=$3 ldflags=$4 start; start=$(date +%s)
  GOBIN="$cache/tools/.$name" go install -trimpath -ldflags "-s -w $ldflags" "$pkg"
  mv "$cache/tools/.$name/$name" "$dest"
  log "$name ${pkg#*@} built in $(( $(date +%s) - start )) s"
}

pids=()
[ -x "$crane_bin" ] || { go_install crane "github.com/google/go-containerregistry/cmd/crane@$GGCR_VERSION" \
  "$crane_bin" "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$GGCR_VERSION" & pids+=($!); }
[ -x "$cosign_bin" ] || { go_install cosign "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" \
  "$cosign_bin" "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION" & pids+=($!); }
[ -x "$syft_bin" ] || { go_install syft "github.com/anchore/syft/cmd/syft@$SYFT_VERSION" \
  "$syft_bin" "-X main.version=${SYFT_VERSION#v}" & pids+=($!); }
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" = 0 ] || { log "a release tool failed to build (see above)"; exit 1; }
# Stable names for the tests and for people: bin/crane, bin/cosign, bin/syft.
ln -sfn "$(basename "$crane_bin")" "$bin/crane"
ln -sfn "$(basename "$cosign_bin")" "$bin/cosign"
ln -sfn "$(basename "$syft_bin")" "$bin/syft"
echo "$bin"
