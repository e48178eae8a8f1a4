"""Resolve `module:attribute` import paths into workflow classes and activity callables.

The same image hosts any pool, so user code arrives as import paths in env; a typo must fail
at startup with the path and the cause, not later as "workflow type not registered".
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from worker_runtime.config import ConfigError


@dataclass(frozen=True)
class UserCode:
    """What the worker registers."""

    workflows: list[type]
    activities: list[Callable[..., Any]]

    @property
    def has_sync_activities(self) -> bool:
        """Sync activities need a thread pool; the SDK refuses them without one."""
        return any(not _is_async(a) for a in self.activities)


def _is_async(fn: Callable[..., Any]) -> bool:
    # Callable class instances are async when their __call__ is.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def import_object(path: str, env: str) -> Any:
    """Import `module:attribute` (attribute may be dotted); raise ConfigError naming the path."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{env}: {path!r} is not an import path — use module:attribute")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:
        raise ConfigError(
            f"{env}: cannot import {path!r}: {type(err).__name__}: {err} — check the module "
            "name and that the package is installed in the image"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{env}: cannot import {path!r}: module {module_name!r} has no attribute "
                f"{attr!r} — check the attribute name"
            ) from None
    return obj


def _is_workflow(obj: Any) -> bool:
    return inspect.isclass(obj) and hasattr(obj, "__temporal_workflow_definition")


def _is_activity(obj: Any) -> bool:
    return callable(obj) and hasattr(obj, "__temporal_activity_definition")


def _expand(obj: Any, path: str, env: str, check: Callable[[Any], bool], kind: str) -> list[Any]:
    """A definition, a list of them, or a no-argument factory returning a list of them."""
    if check(obj):
        return [obj]
    if isinstance(obj, list | tuple):
        items: Sequence[Any] = obj
    elif callable(obj) and not inspect.isclass(obj) and _takes_no_args(obj):
        try:
            produced = obj()
        except Exception as err:
            raise ConfigError(
                f"{env}: factory {path!r} raised {type(err).__name__}: {err}"
            ) from None
        items = produced if isinstance(produced, list | tuple) else [produced]
    else:
        raise ConfigError(
            f"{env}: {path!r} is not {_article(kind)} (nor a list of them, nor a no-argument "
            f"function returning a list) — decorate it with {_decorator(kind)}"
        )
    out: list[Any] = []
    for item in items:
        if isinstance(item, list | tuple):
            out.extend(_expand(item, path, env, check, kind))
        elif check(item):
            out.append(item)
        else:
            raise ConfigError(
                f"{env}: {path!r} yielded {item!r}, which is not {_article(kind)} — decorate it "
                f"with {_decorator(kind)}"
            )
    return out


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _decorator(kind: str) -> str:
    return "@workflow.defn" if kind == "workflow class" else "@activity.defn"


def _takes_no_args(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not inspect.Parameter.empty
        or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in sig.parameters.values()
    )


def load_user_code(workflows: Sequence[str], activities: Sequence[str]) -> UserCode:
    """Import every configured path; the first failure raises `ConfigError`."""
    wf: list[type] = []
    for p in workflows:
        obj = import_object(p, "TWP_WORKFLOWS")
        wf.extend(_expand(obj, p, "TWP_WORKFLOWS", _is_workflow, "workflow class"))
    acts: list[Callable[..., Any]] = []
    for p in activities:
        obj = import_object(p, "TWP_ACTIVITIES")
        acts.extend(_expand(obj, p, "TWP_ACTIVITIES", _is_activity, "activity"))
    # Same definition listed twice (e.g. via two factories) would make the SDK refuse to start.
    return UserCode(workflows=list(dict.fromkeys(wf)), activities=list(dict.fromkeys(acts)))
