#!/usr/bin/env bash
# Build the project's images offline: wheels are fetched on the host (where pip reaches the
# package index and verifies TLS), for the base image's Python and this machine's CPU, into
# build/wheelhouse/<target>; `docker build` then installs with --no-index, so no build step
# needs the network. Usage: hack/build-images.sh [operator] [runtime] [runtime-gpu] (default: all)
#   IMG_TAG (worker_runtime.__version__), BASE_IMAGE (workerpools/base:$DEBIAN_SUITE), PYTHON (python3, with pip)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
tag="${IMG_TAG:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/worker_runtime/__init__.py")}"
base="${BASE_IMAGE:-workerpools/base:$DEBIAN_SUITE}"
python="${PYTHON:-python3}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(operator runtime runtime-gpu)
log() { printf '[build-images] %s\n' "$*" >&2; }

declare -A image=([operator]=workerpools/operator [runtime]=workerpools/worker-runtime
  [runtime-gpu]=workerpools/worker-runtime-gpu)
declare -A extras=([operator]=operator [runtime]=openai,tracing [runtime-gpu]=openai,llm,tracing)
for t in "${targets[@]}"; do
  [ -n "${image[$t]:-}" ] || { log "unknown target $t (operator, runtime, runtime-gpu)"; exit 2; }
done

BASE_IMAGE="$base" bash "$here/build-base-image.sh"
pyver=$(docker run --rm "$base" python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')
arch=$(uname -m)
# Wheels for the image's glibc (bookworm: 2.36) and any older manylinux tag.
platforms=(--platform "manylinux2014_$arch" --platform "manylinux1_$arch")
for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done

wheels="$root/build/wheelhouse"
mkdir -p "$wheels/_project"
rm -f "$wheels"/_project/*.whl
log "building the project wheel"
"$python" -m pip wheel -q --no-deps -w "$wheels/_project" "$root" >/dev/null
project=$(ls "$wheels"/_project/*.whl)
version=$(basename "$project" | cut -d- -f2)

# BuildKit builds only the stages a target needs, but it needs the buildx plugin, which Debian's
# docker.io lacks; the legacy builder then runs every stage before the target, so each of them
# gets its wheels too (in Dockerfile order: operator, runtime, runtime-gpu).
if [ -z "${DOCKER_BUILDKIT:-}" ]; then
  if docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=1; else export DOCKER_BUILDKIT=0; fi
fi
order=(operator runtime runtime-gpu)
last=0
for i in "${!order[@]}"; do
  for t in "${targets[@]}"; do if [ "$t" = "${order[$i]}" ]; then last=$i; fi; done
done
wheel_targets=("${targets[@]}")
[ "$DOCKER_BUILDKIT" = 1 ] || wheel_targets=("${order[@]:0:$((last + 1))}")

for t in "${order[@]}"; do mkdir -p "$wheels/$t"; done
for t in "${wheel_targets[@]}"; do
  dir="$wheels/$t"
  rm -f "$dir"/temporal_workerpools-*.whl
  cp "$project" "$dir/"
  log "$t: wheels for cp$pyver $arch (extras ${extras[$t]})"
  "$python" -m pip download -q -d "$dir" --find-links "$dir" --only-binary=:all: \
    --python-version "$pyver" --implementation cp --abi "cp$pyver" "${platforms[@]}" \
    "temporal-workerpools[${extras[$t]}]==$version"
done

for t in "${targets[@]}"; do
  start=$(date +%s)
  log "$t: docker build ${image[$t]}:$tag (BuildKit: $DOCKER_BUILDKIT)"
  docker build -q -f "$here/offline.Dockerfile" --target "$t" --build-arg "BASE_IMAGE=$base" -t "${image[$t]}:$tag" "$root" >/dev/null
  log "$t: ${image[$t]}:$tag built in $(( $(date +%s) - start )) s"
done
