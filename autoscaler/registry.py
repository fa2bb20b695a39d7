"""Finds policies by name: built-ins, entry-point plug-ins, or a ``module:attr`` import path.

Policy code is only ever imported from installed modules, never taken from a policy file.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from autoscaler.core.policy import PolicySpec

ENTRY_POINT_GROUP = "autoscaler.policies"
BUILTIN: dict[str, str] = {
    "concurrency": "autoscaler.core.policies.concurrency:SPEC",
    "queue": "autoscaler.core.policies.queue:SPEC",
    "hpa": "autoscaler.core.policies.hpa:SPEC",
    "kpa": "autoscaler.core.policies.kpa:SPEC",
    "metric": "autoscaler.core.policies.metric:SPEC",
}


class UnknownPolicyError(LookupError):
    pass


def _import(path: str) -> object:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UnknownPolicyError(f"{path!r} is not an import path like 'package.module:SPEC'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownPolicyError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise UnknownPolicyError(f"{module_name!r} has no attribute {attr!r}") from exc


def _plugin_entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_policy_names() -> list[str]:
    return sorted({*BUILTIN, *_plugin_entry_points()})


@cache
def get_policy(name: str) -> PolicySpec:
    """The spec for a built-in name, a plug-in entry-point name, or ``module:attr``."""
    if name in BUILTIN:
        target = BUILTIN[name]
    elif ":" in name:
        target = name
    else:
        plugins = _plugin_entry_points()
        if name not in plugins:
            raise UnknownPolicyError(f"unknown policy (known: {', '.join(known_policy_names())})")
        target = plugins[name]
    spec = _import(target)
    if not isinstance(spec, PolicySpec):
        raise UnknownPolicyError(f"{target!r} is not an autoscaler.core.policy.PolicySpec")
    return spec
