#!/usr/bin/env bash
# Make the base image every project image builds FROM: Debian minbase with Python 3 and venv,
# made with debootstrap and `docker import`, because no public image registry is reachable here
# and a base we make ourselves is one we can audit. Reused when the image already exists.
#   BASE_IMAGE   image name to create (default workerpools/base:bookworm)
#   DEBIAN_SUITE suite (default bookworm); DEBIAN_MIRROR defaults to this host's apt mirror.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
image="${BASE_IMAGE:-workerpools/base:$DEBIAN_SUITE}"
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
log "debootstrap $suite into $root (${mirror:-debootstrap default mirror})"
# ca-certificates: the runtime talks TLS to Temporal Cloud and OpenAI with the system roots.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$suite" "$root" ${mirror:+"$mirror"} >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Trim what an image never needs: apt lists and caches, docs, man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
log "$image built in $(( $(date +%s) - start )) s"
