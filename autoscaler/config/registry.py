"""Finds policies by name: built-ins, entry-point plug-ins, or an allow-listed import path.

A policy name comes from a policy file or an annotation, i.e. from whoever can edit one, so a
name never reaches ``importlib`` on its own say. Three sources, in order:

* the built-ins (``slo``, ``concurrency``, ``queue``, ``hpa``, ``kpa``, ``metric``);
* the entry-point group ``autoscaler.policies``: plug-ins that an installed package declares,
  so installing the package is the act that trusts them;
* a ``module:attr`` import path, only when it is listed in the daemon config's
  ``allowed_policy_imports`` (ops' allow-list, passed here as ``allowed_imports``).

An annotation may only name a registered policy (a built-in or an entry point): callers
resolving an annotation pass no allow-list, since whoever can annotate one Deployment must not
be able to load code into the daemon, not even code ops allowed for policy files.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from autoscaler.config.params import params_model
from autoscaler.core.policy import PolicySpec

ENTRY_POINT_GROUP = "autoscaler.policies"
BUILTIN: dict[str, str] = {
    "concurrency": "autoscaler.core.policies.concurrency:SPEC",
    "queue": "autoscaler.core.policies.queue:SPEC",
    "hpa": "autoscaler.core.policies.hpa:SPEC",
    "kpa": "autoscaler.core.policies.kpa:SPEC",
    "metric": "autoscaler.core.policies.metric:SPEC",
    "slo": "autoscaler.core.policies.slo:SPEC",
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


def is_registered(name: str) -> bool:
    """Whether ``name`` is a built-in or an entry-point plug-in (what an annotation may name)."""
    return name in BUILTIN or name in _plugin_entry_points()


@cache
def get_policy(name: str, allowed_imports: tuple[str, ...] = ()) -> PolicySpec:
    """The spec for a built-in name, a plug-in entry-point name, or a ``module:attr`` path
    listed in ``allowed_imports`` (the daemon config's ``allowed_policy_imports``). Anything
    else raises ``UnknownPolicyError`` before any import happens."""
    if name in BUILTIN:
        target = BUILTIN[name]
    else:
        plugins = _plugin_entry_points()
        if name in plugins:
            target = plugins[name]
        elif name in allowed_imports:
            target = name
        else:
            rule = f"unknown policy (known: {', '.join(known_policy_names())})"
            if ":" in name:
                rule += "; import paths must be listed in allowed_policy_imports"
            raise UnknownPolicyError(rule)
    spec = _import(target)
    if not isinstance(spec, PolicySpec):
        raise UnknownPolicyError(f"{target!r} is not an autoscaler.core.policy.PolicySpec")
    params = spec.params_type
    # Its own dataclass, not merely a subclass of one: the inherited fields would be none, and
    # every key a file sets would be refused as unknown.
    if not (isinstance(params, type) and "__dataclass_fields__" in vars(params)):
        raise UnknownPolicyError(
            f"{target!r}: params_type {params!r} is not a dataclass (decorate it with "
            "@dataclass(frozen=True, slots=True, kw_only=True))"
        )
    try:
        params_model(params)  # a field type the files cannot express is the plug-in's error
    except (TypeError, NameError) as exc:
        raise UnknownPolicyError(f"{target!r}: {exc}") from exc
    return spec
