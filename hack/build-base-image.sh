#!/usr/bin/env bash
# Make the base image every project image builds FROM: Debian minbase with Python 3 and venv,
# made with debootstrap and `docker import`, because no public image registry is reachable here
# and a base we make ourselves is one we can audit. Reused when the image already exists.
#   BASE_IMAGE   image name to create (default workerpools/base:bookworm, or
#                workerpools/base:bookworm-$ARCH for another architecture)
#   ARCH         Debian architecture (default: this machine's). Another one (arm64) is built with
#                `debootstrap --foreign` and its second stage run in a chroot under qemu-user-static
#                (the binfmt_misc entry is registered here when missing), then imported with
#                `docker import --platform linux/$ARCH`.
#   DEBIAN_SUITE suite (default bookworm); DEBIAN_MIRROR defaults to this host's apt mirror.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
host_arch=$(dpkg --print-architecture)
arch="${ARCH:-$host_arch}"
if [ "$arch" = "$host_arch" ]; then
  image="${BASE_IMAGE:-workerpools/base:$DEBIAN_SUITE}"
else
  image="${BASE_IMAGE:-workerpools/base:$DEBIAN_SUITE-$arch}"
fi
suite="${DEBIAN_SUITE}"
log() { printf '[build-base-image] %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  log "$image exists"
  exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; exit 1; }

# The mirror this host's apt already uses (deb822 or one-line format), so no host is hard-coded.
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi

start=$(date +%s)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
foreign=()
if [ "$arch" != "$host_arch" ]; then
  # qemu-user-static ships the binfmt_misc entries in /usr/lib/binfmt.d; without systemd
  # nothing registers them, so do it here (root; the F flag keeps it usable in chroots).
  qemu_arch=$(case "$arch" in arm64) echo aarch64 ;; *) echo "$arch" ;; esac)
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qemu_arch" ]; then
    conf="/usr/lib/binfmt.d/qemu-$qemu_arch.conf"
    [ -f "$conf" ] || { log "no $conf: apt-get install qemu-user-static"; exit 1; }
    cat "$conf" > /proc/sys/fs/binfmt_misc/register
  fi
  foreign=(--arch "$arch" --foreign)
fi
log "debootstrap $suite ($arch) into $root (${mirror:-debootstrap default mirror})"
# ca-certificates: the runtime talks TLS to Temporal Cloud and OpenAI with the system roots.
debootstrap "${foreign[@]}" --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$suite" "$root" ${mirror:+"$mirror"} >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
if [ ${#foreign[@]} -gt 0 ]; then
  log "second stage under qemu-$qemu_arch (slow: every package's scripts run emulated)"
  chroot "$root" /debootstrap/debootstrap --second-stage >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
fi
rm -f "$root.log"
# Trim what an image never needs: apt lists and caches, docs, man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
if [ ${#foreign[@]} -gt 0 ]; then
  # `docker import --platform` is ignored by a daemon without experimental features: the config
  # says this machine's architecture. Rewrite it (save, new config, load), so `docker build
  # --platform linux/$arch` finds the image and what it builds says $arch.
  docker save -o "$root.tar" "$image"
  python3 - "$root.tar" "$root.arch.tar" "$arch" <<'PY'
import hashlib, io, json, sys, tarfile
src, dst, arch = sys.argv[1:4]
with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
    manifest = json.load(tin.extractfile("manifest.json"))
    old = manifest[0]["Config"]
    config = json.load(tin.extractfile(old))
    config["architecture"] = arch
    body = json.dumps(config, separators=(",", ":")).encode()
    manifest[0]["Config"] = hashlib.sha256(body).hexdigest() + ".json"
    for m in tin.getmembers():
        if m.name not in (old, "manifest.json", "repositories"):
            tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    for name, data in ((manifest[0]["Config"], body), ("manifest.json", json.dumps(manifest).encode())):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tout.addfile(info, io.BytesIO(data))
PY
  old_id=$(docker image inspect -f '{{.Id}}' "$image")
  docker load -q -i "$root.arch.tar" >/dev/null
  docker rmi "$old_id" >/dev/null 2>&1 || true
  rm -f "$root.tar" "$root.arch.tar"
fi
log "$image built in $(( $(date +%s) - start )) s"
