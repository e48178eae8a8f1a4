"""Pure comparison of what we would apply with what the cache holds (no I/O).

Nothing is written when the live object already matches: the applied manifest's hash (catches
fields we removed) and a semantic subset check against the live object (catches edits by
others) must both agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from workerpool_operator.names import APPLIED_HASH_ANNOTATION
from workerpool_operator.quantity import parse_quantity


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of what we apply (without the hash annotation itself)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_hash(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of `obj` carrying its own hash as an annotation."""
    digest = manifest_hash(obj)
    meta = dict(obj.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), APPLIED_HASH_ANNOTATION: digest}
    return {**obj, "metadata": meta}


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if isinstance(want, int | str | float) and isinstance(have, int | str | float):
        try:  # the API server canonicalizes quantities: 1024Mi == 1Gi, 2 == "2"
            return Decimal(parse_quantity(want)) == Decimal(parse_quantity(have))
        except (ValueError, TypeError, ArithmeticError):
            return False
    return False


# The API server drops empty optional fields (`value: ""` in an EnvVar, say): missing == empty.
_OMITTED_WHEN_EMPTY: tuple[Any, ...] = ("", None, {}, [])


def _list_map_key(items: list[Any]) -> str | None:
    """The key of a Kubernetes map-list (`name` or `type`), if every entry carries it."""
    for key in ("name", "type"):
        if items and all(isinstance(i, Mapping) and key in i for i in items):
            return key
    return None


def is_subset(want: Any, have: Any) -> bool:
    """True when every field we set is present and equal in the live object (defaults ignored)."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return False
        return all(
            is_subset(v, have[k]) if k in have else v in _OMITTED_WHEN_EMPTY
            for k, v in want.items()
        )
    if isinstance(want, list):
        if not isinstance(have, list):
            return False
        key = _list_map_key(want)
        if key is not None and _list_map_key(have) == key:
            # map-lists (containers, env, conditions...) match by key; others may own entries
            by_key = {h[key]: h for h in have}
            return all(w[key] in by_key and is_subset(w, by_key[w[key]]) for w in want)
        if len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    return _same_scalar(want, have)


def up_to_date(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying `desired` (already carrying its hash) would change nothing."""
    if live is None:
        return False
    want_hash = desired.get("metadata", {}).get("annotations", {}).get(APPLIED_HASH_ANNOTATION)
    have_hash = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    return want_hash == have_hash and is_subset(desired, live)
