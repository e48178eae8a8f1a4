#!/usr/bin/env bash
# Make a Docker engine and the debootstrap base image available for the image tests:
# reuse a running engine; otherwise, as root, install Debian's docker.io (and debootstrap) and
# start dockerd in the background. `--stop` stops a dockerd this script started.
# Without root and without an engine it says so and exits 0: the image tests then skip locally
# (and fail under CI=true, so a green CI always means they ran).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WORKERPOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workerpools}"
state="$cache/docker"
pidfile="$state/dockerd.pid"
log() { printf '[setup-docker] %s\n' "$*" >&2; }

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    log "stopped dockerd ($pid)"
  fi
  rm -f "$pidfile"
  exit 0
fi

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v dockerd >/dev/null || missing+=(docker.io)
if ! docker info >/dev/null 2>&1 || [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "no usable Docker engine and not root: the image tests will be skipped" \
      "(install docker.io and debootstrap, or run as root)"
    exit 0
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if ! docker info >/dev/null 2>&1; then
  mkdir -p "$state"
  log "starting dockerd (log: $state/dockerd.log)"
  # setsid: the engine outlives this make step; `--stop` (or a reboot) ends it.
  setsid dockerd --pidfile "$state/dockerd.run.pid" >"$state/dockerd.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$state/dockerd.log" >&2; exit 1; }
fi
log "Docker $(docker version --format '{{.Server.Version}}') is up"
bash "$here/build-base-image.sh"
