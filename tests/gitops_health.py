"""How Argo CD and Flux read a pool's health, for tests: the repo's Argo CD health check (Lua,
run with lupa, as Argo CD's gopher-lua would) and Flux's kstatus (hack/kstatus)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HEALTH_LUA = ROOT / "examples" / "gitops" / "argocd" / "health.lua"
FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "pools"


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def argocd_health(obj: dict[str, Any], script: str | None = None) -> dict[str, str]:
    """Run the health check on one object: {"status": ..., "message": ...}."""
    # Lua 5.1, the language of gopher-lua, which Argo CD runs health checks with.
    from lupa.lua51 import LuaRuntime  # lupa is a test dependency only

    lua = LuaRuntime(unpack_returned_tuples=True)
    source = script if script is not None else HEALTH_LUA.read_text()
    check = lua.eval(f"function(obj)\n{source}\nend")
    result = check(_to_lua(lua, obj))
    return {k: str(v) for k, v in dict(result).items()}


def kstatus(binary: str, objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """kstatus's reading of each object, by name."""
    out = subprocess.run(
        [binary], input=yaml.safe_dump_all(objects), capture_output=True, text=True,
        check=True, timeout=60,
    ).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["name"]: r for r in rows}


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without server bookkeeping that tells nothing about health."""
    meta = obj["metadata"]
    for key in ("managedFields", "uid", "resourceVersion", "creationTimestamp", "namespace"):
        meta.pop(key, None)
    meta.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    return obj
