#!/usr/bin/env bash
# Build, describe, sign and publish one release to an OCI registry (`make release`):
#   1. the operator, runtime and runtime-gpu images (hack/build-images.sh, the offline
#      debootstrap path), tagged with the project's version (worker_runtime.__version__);
#   2. each image pushed as $REGISTRY/workerpools/<name>:<version> (crane), its SPDX SBOM made
#      by syft from the same image archive, attached as a signed attestation (cosign attest),
#      and the image signed (cosign sign) by digest;
#   3. the chart packaged (helm package, image.registry set to $REGISTRY so the published chart
#      runs the published operator image), pushed to oci://$REGISTRY/charts, and signed.
# Inputs (environment):
#   REGISTRY        host[:port][/path] to publish to (required)
#   COSIGN_KEY      cosign private key file (required; `cosign generate-key-pair`), with
#                   COSIGN_PASSWORD its password (may be empty)
#   IMAGES          which images (default: operator runtime runtime-gpu)
#   PLAIN_HTTP      1: the registry speaks plain HTTP (a loopback test registry); default: 1 when
#                   REGISTRY is on 127.0.0.1 or localhost, else 0
#   SKIP_BUILD      1: the images already exist in the local Docker engine at this version
#   ARCHS           Debian architectures of operator and runtime (default: this machine's). With
#                   more than one (`ARCHS="amd64 arm64"`, `make release-multiarch`), each is built
#                   (hack/build-images.sh ARCH=...; a foreign one under qemu-user-static), pushed
#                   as <name>:<version>-<arch>, SBOM-attested and signed by digest, and
#                   <name>:<version> becomes an image index of them (crane index append), signed
#                   too. runtime-gpu stays single-architecture (this machine's).
#   OUT             where SBOMs, the chart package and release.txt go (default build/release)
# Signatures are not uploaded to a transparency log (--tlog-upload=false): verify with the
# public key and --insecure-ignore-tlog, as the README's install section does.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
log() { printf '[release] %s\n' "$*" >&2; }

: "${REGISTRY:?set REGISTRY=host[:port][/path] to publish to}"
: "${COSIGN_KEY:?set COSIGN_KEY to a cosign private key (cosign generate-key-pair)}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-}"
python="${PYTHON:-python3}"
version=$(cd "$root" && "$python" -c 'import worker_runtime; print(worker_runtime.__version__)')
read -r -a images <<< "${IMAGES:-operator runtime runtime-gpu}"
host_arch=$(dpkg --print-architecture)
read -r -a archs <<< "${ARCHS:-$host_arch}"
out="${OUT:-$root/build/release}"
case "$REGISTRY" in
  127.0.0.1*|localhost*) plain="${PLAIN_HTTP:-1}" ;;
  *) plain="${PLAIN_HTTP:-0}" ;;
esac

bin=$(bash "$here/build-release-tools.sh")
helm_bin="$bin/helm"
[ -x "$helm_bin" ] || bash "$here/build-tools.sh" >/dev/null  # helm: the chart tools' cache
crane=("$bin/crane"); cosign=("$bin/cosign"); helm_push=("$helm_bin" push)
cosign_reg=()
if [ "$plain" = 1 ]; then
  crane+=(--insecure)
  cosign_reg=(--allow-insecure-registry --allow-http-registry)
  helm_push+=(--plain-http)
fi

declare -A repo=([operator]=workerpools/operator [runtime]=workerpools/worker-runtime
  [runtime-gpu]=workerpools/worker-runtime-gpu)
rm -rf "$out" && mkdir -p "$out"
multiarch=()  # the images built for every architecture in ARCHS (not runtime-gpu)
for t in "${images[@]}"; do [ "$t" = runtime-gpu ] || multiarch+=("$t"); done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  IMG_TAG="$version" PYTHON="$python" bash "$here/build-images.sh" "${images[@]}"
  for a in "${archs[@]}"; do
    if [ "$a" != "$host_arch" ] && [ ${#multiarch[@]} -gt 0 ]; then
      ARCH="$a" IMG_TAG="$version" PYTHON="$python" bash "$here/build-images.sh" "${multiarch[@]}"
    fi
  done
fi

sign() {  # sign REF@DIGEST with the release key (no transparency log)
  "${cosign[@]}" sign --yes --key "$COSIGN_KEY" --tlog-upload=false "${cosign_reg[@]}" "$1" >/dev/null
}

# publish LOCAL_REF REF SBOM: push one local image, attest its SBOM, sign it; prints the digest.
publish() {
  local archive="$out/image.tar" digest
  docker save -o "$archive" "$1"
  "${crane[@]}" push "$archive" "$2" >/dev/null
  digest=$("${crane[@]}" digest "$2")
  # The SBOM of exactly what was pushed: the same archive, scanned offline.
  "$bin/syft" scan "docker-archive:$archive" -q -o "spdx-json=$3"
  rm -f "$archive"
  sign "$2@$digest"
  "${cosign[@]}" attest --yes --key "$COSIGN_KEY" --tlog-upload=false "${cosign_reg[@]}" \
    --type spdxjson --predicate "$3" "$2@$digest" >/dev/null
  echo "$digest"
}

for t in "${images[@]}"; do
  ref="$REGISTRY/${repo[$t]}:$version"
  start=$(date +%s)
  if [ ${#archs[@]} -eq 1 ] || [ "$t" = runtime-gpu ]; then
    digest=$(publish "${repo[$t]}:$version" "$ref" "$out/$t.spdx.json")
  else
    manifests=()
    for a in "${archs[@]}"; do
      local_ref="${repo[$t]}:$version"; [ "$a" = "$host_arch" ] || local_ref+="-$a"
      d=$(publish "$local_ref" "$ref-$a" "$out/$t-$a.spdx.json")
      manifests+=(-m "$ref-$a@$d")
      log "$t ($a): $ref-$a@$d pushed, SBOM attested, signed"
    done
    # The index names each image's platform from its config (linux/amd64, linux/arm64).
    "${crane[@]}" index append --docker-empty-base "${manifests[@]}" -t "$ref" >/dev/null
    digest=$("${crane[@]}" digest "$ref")
    sign "$ref@$digest"
  fi
  echo "$ref@$digest" >> "$out/release.txt"
  log "$t: $ref@$digest pushed, SBOM attested, signed in $(( $(date +%s) - start )) s"
done

# The chart: version and appVersion are the project's; the image comes from the registry.
chart="$out/chart/workerpool-operator"
mkdir -p "$out/chart" && cp -r "$root/charts/workerpool-operator" "$chart"
"$python" - "$chart/values.yaml" "$REGISTRY" <<'PY'
import sys, re
path, registry = sys.argv[1], sys.argv[2]
text = open(path).read()
# Only the operator image's `registry:` line (the first one under `image:`), comments kept.
new, n = re.subn(r'(?m)^(image:\n(?:  .*\n)*?  registry: )""', rf'\g<1>"{registry}"', text, count=1)
if n != 1:
    sys.exit("values.yaml: no image.registry to set")
open(path, "w").write(new)
PY
"$helm_bin" package "$chart" --version "$version" --app-version "$version" -d "$out" >/dev/null
pkg="$out/workerpool-operator-$version.tgz"
pushed=$("${helm_push[@]}" "$pkg" "oci://$REGISTRY/charts" 2>&1)
chart_digest=$(sed -n 's/^Digest: //p' <<< "$pushed")
[ -n "$chart_digest" ] || { log "helm push printed no digest: $pushed"; exit 1; }
sign "$REGISTRY/charts/workerpool-operator@$chart_digest"
echo "$REGISTRY/charts/workerpool-operator:$version@$chart_digest" >> "$out/release.txt"
log "chart oci://$REGISTRY/charts/workerpool-operator $version ($chart_digest) pushed and signed"
cat "$out/release.txt"
