"""Loads policy files: YAML in, fully validated ``PolicySet`` out, or every problem at once.

A file looks like::

    defaults:            # applies to every deployment
      policy: concurrency
      parallelism: 4
    deployments:         # entries whose `match` globs fit "namespace/name" override defaults,
      - match: prod/*    # in file order, later entries winning
        min_replicas: 2

Every problem names the file, the key path, the bad value and the rule, e.g.
``policies/prod.yaml: deployments[2].min_replicas=12: must be <= max_replicas (10)``.
Loading is all-or-nothing: a caller never sees a half-loaded set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from autoscaler.config.catalog import Catalog, InstanceType, NoInstanceError, resolve_instance
from autoscaler.config.models import (
    SETTINGS_KEYS,
    DeploymentSettings,
    matches,
    valid_match_pattern,
)
from autoscaler.core.policy import PolicyParams, PolicySpec
from autoscaler.registry import UnknownPolicyError, get_policy

_MERGED_MAPPINGS = ("instance",)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: str
    value: Any
    rule: str

    def __str__(self) -> str:
        if not self.path:
            return f"{self.file}: {self.rule}"
        return f"{self.file}: {self.path}={_show(self.value)}: {self.rule}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    try:
        return json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


class PolicyFileError(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Rule:
    file: str
    index: int
    patterns: tuple[str, ...]
    overrides: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file}: deployments[{self.index}]"


@dataclass(frozen=True, slots=True)
class Resolved:
    """One deployment's effective configuration."""

    deployment: str
    settings: DeploymentSettings
    policy: PolicySpec
    params: PolicyParams
    rules: tuple[Rule, ...]
    instance: InstanceType | None = None


@dataclass(frozen=True)
class PolicySet:
    files: tuple[str, ...]
    defaults: Mapping[str, Any]
    rules: tuple[Rule, ...]
    default_settings: DeploymentSettings
    _cache: dict[tuple[str, str | None], Resolved] = field(
        default_factory=dict, compare=False, repr=False
    )

    def matching_rules(self, deployment: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if any(matches(p, deployment) for p in r.patterns))

    def manages(self, deployment: str) -> bool:
        return bool(self.matching_rules(deployment))

    def resolve(
        self,
        deployment: str,
        *,
        policy_override: str | None = None,
        catalog: Catalog | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Resolved:
        """Effective settings: built-in defaults, then ``defaults:``, then every matching
        rule in order, then ``overrides`` (a target's own annotations), validated together.
        A deployment no rule matches gets the defaults."""
        if overrides:
            # Rare and per target: not cached (a mapping of overrides is not hashable).
            return self._resolve(deployment, policy_override, catalog, overrides)
        key = (deployment, policy_override)
        cached = self._cache.get(key)
        if cached is None or (catalog is not None and cached.instance is None):
            cached = self._resolve(deployment, policy_override, catalog)
            self._cache[key] = cached
        return cached

    def _resolve(
        self,
        deployment: str,
        policy_override: str | None,
        catalog: Catalog | None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Resolved:
        rules = self.matching_rules(deployment)
        merged = dict(self.defaults)
        for rule in rules:
            merged = _merge(merged, rule.overrides)
        where = f"{deployment} (rules: {', '.join(r.where for r in rules) or 'defaults only'})"
        if overrides:
            merged = _merge(merged, overrides)
            where = f"{deployment} (annotations over {where.partition(' (')[2].rstrip(')')})"
        if policy_override is not None and merged.get("policy", "concurrency") != policy_override:
            merged["policy"] = policy_override
            merged["params"] = {}
        problems: list[Problem] = []
        settings = _validate_settings(merged, where, "", problems)
        spec_params = _validate_params(settings, where, "", problems) if settings else None
        if settings is None or spec_params is None:
            raise PolicyFileError(problems)
        spec, params = spec_params
        instance = None
        if catalog is not None:
            try:
                instance = resolve_instance(catalog, settings.instance)
            except NoInstanceError as exc:
                raise PolicyFileError(
                    [Problem(where, "instance", settings.instance.model_dump(), str(exc))]
                ) from exc
        return Resolved(deployment, settings, spec, params, rules, instance)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    # Compare the *effective* policies (an unset policy is the model default): restating the
    # policy in force keeps its params, and a switch never carries the old policy's params
    # into the new one's.
    switches = "policy" in override and override.get("policy") != base.get(
        "policy", DeploymentSettings.model_fields["policy"].default
    )
    for key, value in override.items():
        mergeable = key in _MERGED_MAPPINGS or (key == "params" and not switches)
        if mergeable and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if switches and "params" not in override:
        # Parameters belong to the policy they were written for.
        merged.pop("params", None)
    return merged


def _loc_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def problems_from(
    exc: ValidationError, file: str, prefix: str, known: Iterable[str] = ()
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = _loc_path(err["loc"])
        ctx = err.get("ctx") or {}
        if err["type"] == "cross_field":
            path, value, rule = _join(path, str(ctx["field"])), ctx["value"], str(ctx["rule"])
        elif err["type"] == "extra_forbidden":
            value, rule = (
                err["input"],
                "unknown key"
                + (f" (known: {', '.join(sorted(known))})" if known and "." not in path else ""),
            )
        else:
            value, rule = err["input"], err["msg"].removeprefix("Value error, ")
        problems.append(Problem(file, _join(prefix, path), value, rule))
    return problems


def _validate_settings(
    merged: Mapping[str, Any], file: str, prefix: str, problems: list[Problem]
) -> DeploymentSettings | None:
    try:
        return DeploymentSettings.model_validate(merged)
    except ValidationError as exc:
        problems.extend(problems_from(exc, file, prefix, SETTINGS_KEYS))
        return None


def _validate_params(
    settings: DeploymentSettings, file: str, prefix: str, problems: list[Problem]
) -> tuple[PolicySpec, PolicyParams] | None:
    try:
        spec = get_policy(settings.policy)
    except UnknownPolicyError as exc:
        problems.append(Problem(file, _join(prefix, "policy"), settings.policy, str(exc)))
        return None
    try:
        params = spec.params_model.model_validate(dict(settings.params))
    except ValidationError as exc:
        known = spec.params_model.model_fields
        problems.extend(problems_from(exc, file, _join(prefix, "params"), known))
        return None
    return spec, params


def _anchor(
    problems: list[Problem],
    rule_keys: Iterable[str],
    rule_prefix: str,
    rule_file: str,
    default_file: Mapping[str, str],
    *,
    fallback_file: str,
) -> list[Problem]:
    """Point each problem at the YAML that set the key: the rule, or the defaults block."""
    keys = set(rule_keys)
    anchored = []
    for p in problems:
        top = p.path.split(".")[0].split("[")[0]
        if top in keys or not p.path:
            anchored.append(Problem(rule_file, _join(rule_prefix, p.path), p.value, p.rule))
        else:
            file = default_file.get(top, fallback_file)
            anchored.append(Problem(file, _join("defaults", p.path), p.value, p.rule))
    return anchored


def policy_files(paths: Iterable[Path]) -> list[Path]:
    """Files named, and ``*.yaml``/``*.yml`` inside folders named, in name order. Hidden
    entries are skipped: a Kubernetes ConfigMap mount keeps old versions under ``..data``."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
                )
            )
        else:
            found.append(path)
    return found


def load_policies(paths: Iterable[Path | str]) -> PolicySet:
    files = policy_files(Path(p) for p in paths)
    return parse_policies([(str(f), _read(f)) for f in files])


def _read(path: Path) -> str | OSError:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        return exc


def parse_policies(sources: Sequence[tuple[str, str | OSError]]) -> PolicySet:
    """Validate ``(file name, text)`` pairs as one policy set; raise with every problem."""
    problems: list[Problem] = []
    if not sources:
        raise PolicyFileError([Problem("<policies>", "", None, "no policy files found")])
    documents: list[tuple[str, dict[str, Any]]] = []
    for name, text in sources:
        if isinstance(text, OSError):
            problems.append(Problem(name, "", None, f"cannot read: {text.strerror or text}"))
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problems.append(Problem(name, "", None, f"invalid YAML: {exc}".replace("\n", " ")))
            continue
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(
                Problem(
                    name,
                    "",
                    None,
                    "top level must be a mapping with 'defaults' and/or 'deployments'",
                )
            )
            continue
        for key in data:
            if key not in ("defaults", "deployments"):
                problems.append(
                    Problem(name, str(key), data[key], "unknown key (known: defaults, deployments)")
                )
        documents.append((name, data))

    defaults: dict[str, Any] = {}
    default_file: dict[str, str] = {}
    for name, data in documents:
        block = data.get("defaults")
        if block is None:
            continue
        if not isinstance(block, dict):
            problems.append(Problem(name, "defaults", block, "must be a mapping of settings"))
            continue
        defaults = _merge(defaults, block)
        default_file.update(dict.fromkeys(block, name))
    # A problem in the merged defaults is blamed on the file that last set its key (else the
    # last file with a defaults block), not on whichever file happened to come first.
    last_default_file = sources[0][0]
    for name, data in documents:
        if isinstance(data.get("defaults"), dict):
            last_default_file = name

    default_problems: list[Problem] = []
    default_settings = _validate_settings(defaults, last_default_file, "defaults", default_problems)
    if default_settings is not None:
        _validate_params(default_settings, last_default_file, "defaults", default_problems)
    for p in default_problems:
        top = p.path.removeprefix("defaults.").split(".")[0].split("[")[0]
        problems.append(Problem(default_file.get(top, p.file), p.path, p.value, p.rule))

    rules: list[Rule] = []
    for name, data in documents:
        entries = data.get("deployments", [])
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(
                Problem(name, "deployments", entries, "must be a list of entries with 'match'")
            )
            continue
        for index, entry in enumerate(entries):
            prefix = f"deployments[{index}]"
            if not isinstance(entry, dict):
                problems.append(
                    Problem(name, prefix, entry, "must be a mapping with 'match' and settings")
                )
                continue
            patterns = entry.get("match")
            if isinstance(patterns, str):
                patterns = [patterns]
            if (
                not isinstance(patterns, list)
                or not patterns
                or not all(isinstance(p, str) and valid_match_pattern(p) for p in patterns)
            ):
                problems.append(
                    Problem(
                        name,
                        f"{prefix}.match",
                        entry.get("match"),
                        "must be a 'namespace/name' glob or a list of them (e.g. prod/*)",
                    )
                )
                continue
            overrides = {k: v for k, v in entry.items() if k != "match"}
            local: list[Problem] = []
            settings = _validate_settings(_merge(defaults, overrides), name, "", local)
            if settings is not None:
                _validate_params(settings, name, "", local)
            if local:
                problems.extend(
                    _anchor(
                        local,
                        overrides,
                        prefix,
                        name,
                        default_file,
                        fallback_file=last_default_file,
                    )
                )
                continue
            rules.append(Rule(name, index, tuple(patterns), overrides))

    if problems or default_settings is None:
        raise PolicyFileError(_dedupe(problems))
    return PolicySet(
        files=tuple(name for name, _ in sources),
        defaults=defaults,
        rules=tuple(rules),
        default_settings=default_settings,
    )


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out
