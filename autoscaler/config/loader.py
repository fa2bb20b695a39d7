"""Loads policy files: YAML in, fully validated ``PolicySet`` out, or every problem at once.

A file looks like::

    defaults:            # applies to every deployment
      policy: concurrency
      parallelism: 4
    deployments:         # entries whose `match` globs fit "namespace/name" override defaults,
      - match: prod/*    # in file order, later entries winning
        min_replicas: 2

Every problem names the file, the line, the key path, the bad value and the rule, e.g.
``policies/prod.yaml:14: deployments[2].min_replicas=12: must be <= max_replicas (10)``,
and every problem of every file is reported at once. Loading is all-or-nothing: a caller
never sees a half-loaded set. The YAML is read within limits (size, depth, aliases, number
length; see ``yaml_safe``), so no file can crash or stall whoever loads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoscaler.config.catalog import Catalog, InstanceType, NoInstanceError, resolve_instance
from autoscaler.config.models import (
    SETTINGS_KEYS,
    DeploymentSettings,
    matches,
    valid_match_pattern,
)
from autoscaler.config.params import params_model, validate_params
from autoscaler.config.problems import NO_VALUE, PolicyFileError, Problem
from autoscaler.config.registry import UnknownPolicyError, get_policy
from autoscaler.config.yaml_safe import DEFAULT_LIMITS, YamlDocument, parse_yaml
from autoscaler.core.policy import PolicyParams, PolicySpec
from autoscaler.core.settings import Settings

# Problem and PolicyFileError are part of this module's interface (callers import them here).
__all__ = [
    "NO_VALUE",
    "PolicyFileError",
    "PolicySet",
    "Problem",
    "Resolved",
    "Rule",
    "load_policies",
    "parse_policies",
    "policy_files",
    "problems_from",
    "read_bounded",
]

_MERGED_MAPPINGS = ("instance", "slo")


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
    """One deployment's effective configuration. Deployments that the same rules match share
    its settings, params and core settings (one copy each, however many deployments)."""

    deployment: str
    settings: DeploymentSettings
    policy: PolicySpec
    params: PolicyParams
    rules: tuple[Rule, ...]
    instance: InstanceType | None
    core: Settings = field(compare=False, repr=False)
    """``settings.core()``: what the decision core reads."""

    @classmethod
    def of(
        cls,
        deployment: str,
        settings: DeploymentSettings,
        policy: PolicySpec,
        params: PolicyParams,
        rules: tuple[Rule, ...],
        instance: InstanceType | None = None,
    ) -> Resolved:
        return cls(deployment, settings, policy, params, rules, instance, settings.core())


@dataclass(frozen=True)
class PolicySet:
    files: tuple[str, ...]
    defaults: Mapping[str, Any]
    rules: tuple[Rule, ...]
    default_settings: DeploymentSettings
    allowed_imports: tuple[str, ...] = ()
    """``module:attr`` policies the files may name (the daemon config's allow-list); kept so a
    reload checks the new files against the same list."""
    _cache: dict[tuple[str, str | None], Resolved] = field(
        default_factory=dict, compare=False, repr=False
    )
    _shared: dict[tuple[tuple[int, ...], str | None], Resolved] = field(
        default_factory=dict, compare=False, repr=False
    )
    """By the matching rules (their identities: they live as long as this set) and the
    override: the resolution every deployment they match shares."""

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
            # What is resolved depends only on the rules that match (and the override): a
            # deployment matched by the same rules as one resolved before shares its result.
            rules = self.matching_rules(deployment)
            shape = (tuple(id(rule) for rule in rules), policy_override)
            shared = self._shared.get(shape)
            if shared is None or (catalog is not None and shared.instance is None):
                shared = self._resolve(deployment, policy_override, catalog)
                self._shared[shape] = shared
            cached = (
                shared
                if shared.deployment == deployment
                else replace(shared, deployment=deployment)
            )
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
        if (
            policy_override is not None
            and merged.get("policy", DeploymentSettings.model_fields["policy"].default)
            != policy_override
        ):
            merged["policy"] = policy_override
            merged["params"] = {}
        # A policy named by an annotation must be registered: the allow-list is for files.
        from_target = policy_override is not None or bool(overrides and "policy" in overrides)
        allowed = () if from_target else self.allowed_imports
        problems: list[Problem] = []
        settings = _validate_settings(merged, where, "", problems)
        spec_params = _validate_params(settings, where, "", problems, allowed) if settings else None
        if settings is None or spec_params is None:
            raise PolicyFileError(problems)
        spec, params = spec_params
        # The effective policy's defaults (the --compare override's, not the file's policy's).
        settings = _with_policy_defaults(settings, merged, spec, where, "", problems)
        if settings is None:
            raise PolicyFileError(problems)
        instance = None
        if catalog is not None:
            try:
                instance = resolve_instance(catalog, settings.instance)
            except NoInstanceError as exc:
                raise PolicyFileError(
                    [Problem(where, "instance", settings.instance.model_dump(), str(exc))]
                ) from exc
        return Resolved.of(deployment, settings, spec, params, rules, instance)


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


def _with_policy_defaults(
    settings: DeploymentSettings,
    merged: Mapping[str, Any],
    spec: PolicySpec,
    file: str,
    prefix: str,
    problems: list[Problem],
) -> DeploymentSettings | None:
    """``settings`` with the policy's ``settings_defaults`` for the keys ``merged`` leaves
    unset: any key the files (or annotations) set wins, and the policy's preference comes
    before the built-in default. ``policy`` and ``params`` are the files' alone."""
    unset = {
        key: value
        for key, value in spec.settings_defaults.items()
        if key not in merged and key not in ("policy", "params")
    }
    if not unset:
        return settings
    try:
        return DeploymentSettings.model_validate({**merged, **unset})
    except ValidationError as exc:
        # Name the policy's defaults: the files may not mention the key at all.
        note = f" (with policy {spec.name}'s settings defaults {unset})"
        problems.extend(
            Problem(p.file, p.path, p.value, p.rule + note)
            for p in problems_from(exc, file, prefix, SETTINGS_KEYS)
        )
        return None


def _validate_params(
    settings: DeploymentSettings,
    file: str,
    prefix: str,
    problems: list[Problem],
    allowed_imports: tuple[str, ...],
) -> tuple[PolicySpec, PolicyParams] | None:
    return _validate_policy_params(
        settings.policy, settings.params, file, prefix, problems, allowed_imports
    )


def _validate_policy_params(
    policy: str,
    params: Mapping[str, Any],
    file: str,
    prefix: str,
    problems: list[Problem],
    allowed_imports: tuple[str, ...],
) -> tuple[PolicySpec, PolicyParams] | None:
    try:
        spec = get_policy(policy, allowed_imports)
    except UnknownPolicyError as exc:
        problems.append(Problem(file, _join(prefix, "policy"), policy, str(exc)))
        return None
    moved = [key for key in params if key in spec.moved_params]
    for key in moved:
        problems.append(
            Problem(file, _join(prefix, f"params.{key}"), params[key], spec.moved_params[key])
        )
    if moved:
        return None
    try:
        validated = validate_params(spec.params_type, params)
    except ValidationError as exc:
        known = params_model(spec.params_type).model_fields
        problems.extend(problems_from(exc, file, _join(prefix, "params"), known))
        return None
    return spec, validated


def _validate_entry(
    merged: Mapping[str, Any],
    file: str,
    prefix: str,
    problems: list[Problem],
    allowed_imports: tuple[str, ...],
) -> DeploymentSettings | None:
    """Settings, then the policy's params; the params are checked even when the settings
    fail, so one run reports both."""
    settings = _validate_settings(merged, file, prefix, problems)
    if settings is not None:
        valid = _validate_params(settings, file, prefix, problems, allowed_imports)
        if valid is None:
            return None
        # Checked here too, so that a policy's defaults that clash with the files fail the
        # load rather than a later resolve.
        return _with_policy_defaults(settings, merged, valid[0], file, prefix, problems)
    policy = merged.get("policy", DeploymentSettings.model_fields["policy"].default)
    params = merged.get("params", {})
    if isinstance(policy, str) and isinstance(params, Mapping):
        _validate_policy_params(policy, params, file, prefix, problems, allowed_imports)
    return None


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


def load_policies(
    paths: Iterable[Path | str], *, allowed_imports: tuple[str, ...] = ()
) -> PolicySet:
    """Load the files named and those in the folders named; ``allowed_imports`` lists the
    ``module:attr`` policies they may name (the daemon config's ``allowed_policy_imports``)."""
    files = policy_files(Path(p) for p in paths)
    return parse_policies(
        [(str(f), read_bounded(f)) for f in files], allowed_imports=allowed_imports
    )


def read_bounded(path: Path, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> str | OSError | Problem:
    """The file's text, or why it cannot be had. Reads at most one byte over the limit, so a
    huge file (or /dev/zero) costs nothing."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        return exc
    if len(raw) > max_bytes:
        return Problem(str(path), "", None, f"larger than {max_bytes} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Problem(str(path), "", None, f"not UTF-8 text ({exc.reason})", line)


_TOP_KEYS = ("defaults", "deployments")


def parse_policies(
    sources: Sequence[tuple[str, str | OSError | Problem]],
    *,
    allowed_imports: tuple[str, ...] = (),
) -> PolicySet:
    """Validate ``(file name, text)`` pairs as one policy set; raise with every problem."""
    if not sources:
        raise PolicyFileError([Problem("<policies>", "", None, "no policy files found")])
    problems: list[Problem] = []
    documents: list[tuple[str, dict[str, Any]]] = []
    read: dict[str, YamlDocument] = {}
    for name, text in sources:
        data = _document(name, text, problems, read)
        if data is not None:
            documents.append((name, data))

    defaults, default_file, last_default_file = _merged_defaults(documents, sources, problems)
    default_problems: list[Problem] = []
    default_settings = _validate_entry(
        defaults, last_default_file, "defaults", default_problems, allowed_imports
    )
    for p in default_problems:
        top = p.path.removeprefix("defaults.").split(".")[0].split("[")[0]
        problems.append(Problem(default_file.get(top, p.file), p.path, p.value, p.rule))

    rules: list[Rule] = []
    for name, data in documents:
        rules.extend(
            _rules(name, data, defaults, default_file, last_default_file, problems, allowed_imports)
        )

    if problems or default_settings is None:
        raise PolicyFileError(_located(_dedupe(problems), read))
    return PolicySet(
        files=tuple(name for name, _ in sources),
        defaults=defaults,
        rules=tuple(rules),
        default_settings=default_settings,
        allowed_imports=tuple(allowed_imports),
    )


def _document(
    name: str,
    text: str | OSError | Problem,
    problems: list[Problem],
    read: dict[str, YamlDocument],
) -> dict[str, Any] | None:
    """One file's top-level mapping, or None (with its problems) when it has none."""
    if isinstance(text, OSError):
        problems.append(Problem(name, "", None, f"cannot read: {text.strerror or text}"))
        return None
    if isinstance(text, Problem):
        problems.append(text)
        return None
    try:
        document = parse_yaml(text, name)
    except PolicyFileError as exc:
        problems.extend(exc.problems)
        return None
    # Duplicate keys and overlong numbers: reported, and the rest of the file is still checked.
    problems.extend(document.problems)
    read[name] = document
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        rule = "top level must be a mapping with 'defaults' and/or 'deployments'"
        problems.append(Problem(name, "", None, rule))
        return None
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(
                Problem(name, str(key), data[key], "unknown key (known: defaults, deployments)")
            )
    return data


def _merged_defaults(
    documents: list[tuple[str, dict[str, Any]]],
    sources: Sequence[tuple[str, object]],
    problems: list[Problem],
) -> tuple[dict[str, Any], dict[str, str], str]:
    """Every file's ``defaults:`` merged in order, which file last set each key, and the last
    file with a defaults block (else the first file)."""
    defaults: dict[str, Any] = {}
    default_file: dict[str, str] = {}
    last_default_file = sources[0][0]
    for name, data in documents:
        block = data.get("defaults")
        if block is None:
            continue
        if not isinstance(block, dict):
            problems.append(Problem(name, "defaults", block, "must be a mapping of settings"))
            continue
        defaults = _merge(defaults, block)
        default_file.update(dict.fromkeys(block, name))
        # A problem in the merged defaults is blamed on the file that last set its key (else
        # the last file with a defaults block), not on whichever file happened to come first.
        last_default_file = name
    return defaults, default_file, last_default_file


def _rules(
    name: str,
    data: dict[str, Any],
    defaults: dict[str, Any],
    default_file: dict[str, str],
    last_default_file: str,
    problems: list[Problem],
    allowed_imports: tuple[str, ...],
) -> list[Rule]:
    entries = data.get("deployments", [])
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.append(
            Problem(name, "deployments", entries, "must be a list of entries with 'match'")
        )
        return []
    rules = []
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
        valid_match = (
            isinstance(patterns, list)
            and bool(patterns)
            and all(isinstance(p, str) and valid_match_pattern(p) for p in patterns)
        )
        if not valid_match:
            problems.append(
                Problem(
                    name,
                    f"{prefix}.match",
                    entry.get("match"),
                    "must be a 'namespace/name' glob or a list of them (e.g. prod/*)",
                )
            )
        overrides = {k: v for k, v in entry.items() if k != "match"}
        local: list[Problem] = []
        # The settings are checked even under a bad `match`: one run reports both.
        _validate_entry(_merge(defaults, overrides), name, "", local, allowed_imports)
        problems.extend(
            _anchor(local, overrides, prefix, name, default_file, fallback_file=last_default_file)
        )
        if valid_match and not local and isinstance(patterns, list):
            rules.append(Rule(name, index, tuple(patterns), overrides))
    return rules


def _located(problems: list[Problem], read: Mapping[str, YamlDocument]) -> list[Problem]:
    """Each problem with the line of the key it is about, in the file it names."""
    out = []
    for p in problems:
        document = read.get(p.file)
        line = document.line_of(p.path) if document is not None and p.line is None else None
        out.append(p if line is None else Problem(p.file, p.path, p.value, p.rule, line))
    return out


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Drop repeats, and a validation problem about a value the YAML reader already refused
    (an overlong number is reported once, not again as "not a valid integer")."""
    seen: set[str] = set()
    refused = {
        (p.file, p.path)
        for p in problems
        if p.line is not None and p.path and p.value is not NO_VALUE
    }
    out = []
    for p in problems:
        if str(p) in seen or (p.line is None and (p.file, p.path) in refused):
            continue
        seen.add(str(p))
        out.append(p)
    return out
