"""The policy contract: a pure function of a snapshot and the policy's own previous state.

A policy recommends a replica count; the framework (``autoscaler.core.guardrails``) then
applies bounds, schedules, delays, rate limits and scale-to-zero rules around it, so no
policy, built-in or plug-in, can break them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from autoscaler.core.snapshot import Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyParams:
    """Base for a policy's ``params``: a frozen dataclass (``frozen=True, slots=True,
    kw_only=True``) whose fields carry their bounds as ``annotated_types`` metadata
    (``Annotated[float, Ge(0), Le(3600)]``) and a description in the string right below each.
    The configuration validates a file's ``params`` into it (``autoscaler.config.params``):
    ``float`` fields take finite numbers, ``int`` fields whole ones, unknown keys are refused.
    Building one directly (a test, a replay) validates nothing."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """Params metadata: a ``str`` field must match this regular expression (``annotated_types``
    has no such constraint)."""

    regex: str


S = TypeVar("S")
"""A policy's own state type."""


@dataclass(frozen=True, slots=True)
class Recommendation(Generic[S]):
    replicas: int
    """Desired replicas before guardrails (any int >= 0; guardrails clamp it)."""
    state: S
    """The policy's new state, handed back on the next call. Keep it immutable and small:
    it is persisted between daemon restarts."""
    reason: str | Callable[[], str]
    """One human-readable line: which inputs gave which number. A policy on a hot path may
    pass a zero-argument function instead; it is called only when someone reads the reason
    (the simulator reads it only for decisions that change the replica count)."""

    def describe(self) -> str:
        return self.reason if isinstance(self.reason, str) else self.reason()


class Policy(Protocol[S]):
    """Implementations must not perform I/O or read clocks; use ``snapshot.now``.

    The state is typed: the framework (``Decider``) always hands ``recommend`` a state of the
    type ``initial_state`` returns, replacing any other (one stored by another policy, or
    unreadable) with a fresh initial state, so a policy never checks what it was given."""

    def initial_state(self) -> S:
        """State for the first call (before any history)."""
        ...

    def recommend(self, snapshot: Snapshot, previous: S, /) -> Recommendation[S]:
        """Desired replicas for ``snapshot``, given the state the previous call returned."""
        ...


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """How the registry knows a policy: its name, the model that validates its ``params``
    and a factory that builds a policy from validated params. Plug-ins export one of these
    (entry-point group ``autoscaler.policies`` or an import path ``module:attr``)."""

    name: str
    params_type: type[PolicyParams]
    factory: Callable[[Any], Policy[Any]]
    summary: str = ""
    settings_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Defaults for deployment settings keys (e.g. ``scale_down_delay_s``) that the policy
    works best with: they apply beneath the policy files, only where no file (nor annotation)
    sets the key for a deployment that runs this policy. The settings keep one name per
    concept; a policy only chooses its default."""

    moved_params: Mapping[str, str] = field(default_factory=dict)
    """Params keys this policy no longer takes, each with what to set instead: a file that
    still sets one is told where the concept went, not just that the key is unknown."""

    def build(self, params: PolicyParams) -> Policy[Any]:
        return self.factory(params)
