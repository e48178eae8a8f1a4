#!/usr/bin/env bash
# Build the project's images offline: wheels are fetched on the host (where pip reaches the
# package index and verifies TLS), for the base image's Python and this machine's CPU, into
# build/wheelhouse/<target>; `docker build` then installs with --no-index, so no build step
# needs the network. Usage: hack/build-images.sh [operator] [runtime] [runtime-gpu] (default: all)
#   IMG_TAG (worker_runtime.__version__), BASE_IMAGE (workerpools/base:$DEBIAN_SUITE), PYTHON (python3, with pip)
# runtime-gpu's third-party packages (torch, transformers, the CUDA wheels: about 3 GB of wheels,
# 6 GB installed) never enter the build context: their wheels are kept in the cache outside the
# repository ($WORKERPOOLS_CACHE/wheelhouse/runtime-gpu) and installed, mounted, into the
# offline.Dockerfile `python` stage's image, committed as workerpools/runtime-gpu-deps:<hash of
# the pinned list and that stage> (reused while both are unchanged); the runtime-gpu stage starts
# from it and adds the project, so a code change rebuilds only a small layer.
# ARCH=arm64 (operator and runtime only) builds for another architecture: a base image of that
# architecture (hack/build-base-image.sh, debootstrap under qemu-user-static), its wheels in
# build/wheelhouse-<arch>/<target>, `docker build --platform linux/<arch>` (every RUN emulated),
# tags <name>:<IMG_TAG>-<arch>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
tag="${IMG_TAG:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/worker_runtime/__init__.py")}"
host_arch=$(dpkg --print-architecture)
deb_arch="${ARCH:-$host_arch}"
python="${PYTHON:-python3}"
foreign=()  # docker flags for another architecture's images
if [ "$deb_arch" = "$host_arch" ]; then
  base="${BASE_IMAGE:-workerpools/base:$DEBIAN_SUITE}"
  wheels="$root/build/wheelhouse"
else
  base="${BASE_IMAGE:-workerpools/base:$DEBIAN_SUITE-$deb_arch}"
  wheels="$root/build/wheelhouse-$deb_arch"
  tag="$tag-$deb_arch"
  foreign=(--platform "linux/$deb_arch")
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(operator runtime runtime-gpu)
log() { printf '[build-images] %s\n' "$*" >&2; }

declare -A image=([operator]=workerpools/operator [runtime]=workerpools/worker-runtime
  [runtime-gpu]=workerpools/worker-runtime-gpu)
declare -A extras=([operator]=operator [runtime]=openai,tracing [runtime-gpu]=openai,llm,tracing)
for t in "${targets[@]}"; do
  [ -n "${image[$t]:-}" ] || { log "unknown target $t (operator, runtime, runtime-gpu)"; exit 2; }
  if [ "$t" = runtime-gpu ] && [ ${#foreign[@]} -gt 0 ]; then
    log "runtime-gpu is built for $host_arch only"; exit 2
  fi
done

ARCH="$deb_arch" BASE_IMAGE="$base" bash "$here/build-base-image.sh"
pyver=$(docker run --rm "${foreign[@]}" "$base" python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')
arch=$(docker run --rm "${foreign[@]}" "$base" uname -m)
# Wheels for the image's glibc (bookworm: 2.36) and any older manylinux tag.
platforms=(--platform "manylinux2014_$arch" --platform "manylinux1_$arch")
for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done

cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
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

pip_target=(--only-binary=:all: --python-version "$pyver" --implementation cp --abi "cp$pyver"
  "${platforms[@]}")
for t in "${order[@]}"; do mkdir -p "$wheels/$t"; done
for t in "${wheel_targets[@]}"; do
  [ "$t" != runtime-gpu ] || continue
  dir="$wheels/$t"
  rm -f "$dir"/temporal_workerpools-*.whl
  cp "$project" "$dir/"
  log "$t: wheels for cp$pyver $arch (extras ${extras[$t]})"
  "$python" -m pip download -q -d "$dir" --find-links "$dir" "${pip_target[@]}" \
    "temporal-workerpools[${extras[$t]}]==$version"
done

# gpu_deps: make (or reuse) the runtime-gpu dependency venv image; prints its name.
gpu_deps() {
  local dir="$cache/wheelhouse/runtime-gpu" req report python_stage name container start
  mkdir -p "$dir"
  log "runtime-gpu: wheels for cp$pyver $arch (extras ${extras[runtime-gpu]}) in $dir"
  "$python" -m pip download -q -d "$dir" --find-links "$dir" --find-links "$wheels/_project" \
    "${pip_target[@]}" "temporal-workerpools[${extras[runtime-gpu]}]==$version"
  rm -f "$dir"/temporal_workerpools-*.whl
  # The exact set pip resolves from that wheelhouse, pinned (pip download leaves older wheels).
  report=$(mktemp); req="$dir/requirements.txt"
  "$python" -m pip install -q --dry-run --ignore-installed --report "$report" --no-index \
    --find-links "$dir" --find-links "$wheels/_project" "${pip_target[@]}" \
    "temporal-workerpools[${extras[runtime-gpu]}]==$version"
  # Wheels the set does not use (older torch or CUDA releases: GBs each) are removed.
  "$python" -c 'import json, pathlib, sys, urllib.parse
items = [i for i in json.load(open(sys.argv[1]))["install"]
         if i["metadata"]["name"] != "temporal-workerpools"]
print("\n".join(sorted("%s==%s" % (i["metadata"]["name"], i["metadata"]["version"])
                       for i in items)))
folder = pathlib.Path(sys.argv[2]).resolve()
used = {pathlib.Path(urllib.parse.unquote(urllib.parse.urlparse(
    (i.get("download_info") or {}).get("url", "")).path)).resolve() for i in items}
if items and all(p.parent == folder for p in used):
    for wheel in folder.glob("*.whl"):
        if wheel.resolve() not in used:
            wheel.unlink()
            print("removed unused", wheel.name, file=sys.stderr)' "$report" "$dir" > "$req"
  rm -f "$report"
  python_stage=$(docker build -q -f "$here/offline.Dockerfile" --target python \
    --build-arg "BASE_IMAGE=$base" "$root")
  name="workerpools/runtime-gpu-deps:$( (cat "$req"; echo "$python_stage") | sha256sum | cut -c1-16)"
  if docker image inspect "$name" >/dev/null 2>&1; then
    log "runtime-gpu: $name exists"
  else
    # docker run + commit, not a build: the wheels are mounted, so they never become a layer.
    start=$(date +%s); container="twp-gpu-deps-$$"
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker run --name "$container" --network none -v "$dir:/wheels:ro" "$python_stage" \
      pip install -q --no-index --find-links /wheels -r /wheels/requirements.txt >&2 \
      || { docker rm -f "$container" >/dev/null; exit 1; }
    docker commit "$container" "$name" >/dev/null
    docker rm "$container" >/dev/null
    log "runtime-gpu: $name made in $(( $(date +%s) - start )) s"
  fi
  echo "$name"
}

build_args=(--build-arg "BASE_IMAGE=$base" --build-arg "WHEELS=${wheels#"$root"/}" "${foreign[@]}")
gpu_deps_image=""
for t in "${wheel_targets[@]}"; do
  if [ "$t" = runtime-gpu ]; then
    gpu_deps_image=$(gpu_deps)
    build_args+=(--build-arg "GPU_DEPS_IMAGE=$gpu_deps_image")
    # The stage installs only the project: every dependency is in the deps image's venv.
    rm -f "$wheels/runtime-gpu"/*.whl
    cp "$project" "$wheels/runtime-gpu/"
  fi
done

for t in "${targets[@]}"; do
  start=$(date +%s)
  log "$t: docker build ${image[$t]}:$tag (BuildKit: $DOCKER_BUILDKIT)"
  old_id=$(docker image inspect -f '{{.Id}}' "${image[$t]}:$tag" 2>/dev/null || true)
  docker build -q -f "$here/offline.Dockerfile" --target "$t" "${build_args[@]}" -t "${image[$t]}:$tag" "$root" >/dev/null
  # The image this tag named before is untagged now: remove it, or every code change leaves one
  # behind on the build machine (refused, and kept, while a container or another tag uses it).
  new_id=$(docker image inspect -f '{{.Id}}' "${image[$t]}:$tag")
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
  log "$t: ${image[$t]}:$tag built in $(( $(date +%s) - start )) s"
done
# A GPU deps image that no runtime-gpu image is built from any more (its pins changed: about
# 6 GB each) loses its tag; docker keeps its layers while an image built on it still exists.
if [ -n "$gpu_deps_image" ]; then
  docker image ls --format '{{.Repository}}:{{.Tag}}' workerpools/runtime-gpu-deps \
    | { grep -vxF "$gpu_deps_image" || true; } | while read -r stale; do
      docker rmi "$stale" >/dev/null 2>&1 && log "runtime-gpu: removed $stale" || true
    done
fi
