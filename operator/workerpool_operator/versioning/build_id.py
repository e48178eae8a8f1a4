"""Build IDs and per-build Deployment names of a versioned pool (pure).

A build ID names one Temporal Worker Deployment Version. Unless the pool fixes it
(spec.versioning.buildId), it is derived from what the workers run: the image (its digest, else
its tag) plus a hash of the pod template. The hash is taken over a normalized template, so it does
not change when a client library reorders keys or adds empty values, and without the settings
that only say where the workers connect (address, namespace, TLS, credentials): those roll every
live version in place instead of minting a new build that would strand pinned workflows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from worker_runtime.contract import CONNECTION_FIELDS, VERSIONING_FIELDS, env_var
from workerpool_operator.render.deployment import TLS_VOLUME

BUILD_ID_LABEL = "workerpools.io/build-id"
LABEL_VALUE_MAX = 63
HASH_CHARS = 10
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_NOT_LABEL_CHARS = re.compile(r"[^-A-Za-z0-9_.]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NOT_DNS_CHARS = re.compile(r"[^a-z0-9-]+")
_EXCLUDED_ENV = frozenset(env_var(f) for f in (*CONNECTION_FIELDS, *VERSIONING_FIELDS))


def normalize(value: Any) -> Any:
    """Drop what carries no meaning: None, empty maps and empty lists, at every depth.

    Kubernetes treats an absent field, `null`, `{}` and `[]` alike in a pod template; client
    libraries differ in which they write (TWC #290: an upgrade changed every build ID). Map key
    order is irrelevant (the hash sorts keys); list order is kept (env order is meaningful).
    """
    if isinstance(value, Mapping):
        out = {str(k): normalize(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list | tuple):
        items = [normalize(v) for v in value]
        return [v for v in items if v is not None and v != {} and v != []]
    return value


def _without_connection(container: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(container)
    if "env" in out:
        out["env"] = [e for e in out["env"] if e.get("name") not in _EXCLUDED_ENV]
    if "volumeMounts" in out:
        out["volumeMounts"] = [m for m in out["volumeMounts"] if m.get("name") != TLS_VOLUME]
    return out


def hashable_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template as far as it decides what the workers run.

    Removed: connection settings (the env contract's CONNECTION_FIELDS and the TLS volume), the
    per-version env and the build-ID label (both derive from the result), then `normalize()`.
    """
    tpl = normalize(template)
    meta = dict(tpl.get("metadata", {}))
    if "labels" in meta:
        meta["labels"] = {k: v for k, v in meta["labels"].items() if k != BUILD_ID_LABEL}
    spec = dict(tpl.get("spec", {}))
    for key in ("containers", "initContainers"):
        if key in spec:
            spec[key] = [_without_connection(c) for c in spec[key]]
    if "volumes" in spec:
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") != TLS_VOLUME]
    result = normalize({"metadata": meta, "spec": spec})
    assert isinstance(result, dict)
    return result


def template_hash(template: Mapping[str, Any]) -> str:
    """HASH_CHARS hex digits of SHA-256 over the canonical JSON of `hashable_template()`."""
    canonical = json.dumps(
        hashable_template(template), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]


def image_part(image: str) -> str:
    """The readable half of a build ID: the digest's first 12 hex digits, else the tag.

    `repo@sha256:abc...` -> `sha256-abc...`(12), `repo:1.2` -> `1.2`, `repo` -> `latest`.
    """
    if "@" in image:
        algo, _, digest = image.split("@", 1)[1].partition(":")
        return f"{algo}-{digest[:12]}" if digest else algo
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def build_id(image: str, template: Mapping[str, Any]) -> str:
    """`<image part>-<template hash>`: always a valid, non-empty label value of <= 63 chars."""
    return _compose(image, template_hash(template))


def group_build_id(members: Sequence[tuple[str, str, str]]) -> str:
    """The one build of a release group: (pool, image, template hash) of every member.

    `<image part of the first pool by name>-<10 hex digits>`, the digits SHA-256 over the
    members sorted by name, so the order pools are listed or read in never matters and a change
    in any member's template or image (or a member joining or leaving) is a new build.
    """
    ordered = sorted(members)
    canonical = json.dumps([list(m) for m in ordered], separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]
    return _compose(ordered[0][1] if ordered else "", digest)


def _compose(image: str, digest: str) -> str:
    readable = _NOT_LABEL_CHARS.sub("-", image_part(image)).strip("-_.")
    readable = readable[: LABEL_VALUE_MAX - HASH_CHARS - 1].rstrip("-_.")
    return f"{readable}-{digest}" if readable else digest


def is_label_value(value: str) -> bool:
    """A non-empty Kubernetes label value (what a build ID must be)."""
    return len(value) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE.match(value))


def deployment_name(pool: str, build: str) -> str:
    """The Deployment of one build: `<pool>-<build>`, a DNS label of at most 63 characters.

    Build IDs may hold upper case, `_` and `.`, which a DNS label cannot: when the plain name is
    not valid or too long, it becomes a readable prefix plus 8 hex digits of SHA-256 over
    (pool, build), so two builds of one pool never share a Deployment.
    """
    plain = f"{pool}-{build}"
    if len(plain) <= LABEL_VALUE_MAX and _DNS_LABEL.match(plain):
        return plain
    digest = hashlib.sha256(f"{pool}\x00{build}".encode()).hexdigest()[:8]
    readable = _NOT_DNS_CHARS.sub("-", plain.lower()).strip("-")
    readable = re.sub(r"-{2,}", "-", readable)[: LABEL_VALUE_MAX - 9].rstrip("-")
    return f"{readable}-{digest}" if readable else digest
