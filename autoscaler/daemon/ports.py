"""The small protocols each daemon stage sits behind, so adapters can be swapped: the dry-run
or the Kubernetes actuator; in-memory or Redis state and leases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

from autoscaler.core.decider import Decision, DecisionState


@dataclass(frozen=True, slots=True)
class Observed:
    """What an actuator knows of a deployment's target."""

    current: int
    """Replicas asked for (``spec.replicas``)."""
    ready: int
    """Replicas ready to serve: the snapshot's ``ready``, so cold starts count as not ready."""
    actionable: bool = True
    """False when the actuator will not act on the target (it does not exist in the cluster,
    is ambiguous, or ops paused or pinned it): the engine then tracks events but does not
    decide."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Policy keys the target itself overrides (its annotations), not yet validated."""


class Actuator(Protocol):
    async def observe(self, deployment: str) -> Observed | None:
        """The target's replicas, or None when the actuator has never seen it and cannot
        (the dry-run actuator before its first decision)."""
        ...

    async def apply(self, deployment: str, decision: Decision, fence: int) -> None:
        """Make ``decision.replicas`` the deployment's replica count. ``fence`` is the
        fencing token of the lease the decision was made under (0 when the lease could not
        be checked); an actuator whose target can store it rejects a lower one."""
        ...


@dataclass(frozen=True, slots=True)
class Saved:
    """What a deployment's owner persists after each decision."""

    state: DecisionState
    replicas: int | None
    """The replicas last decided, so a successor whose actuator cannot observe the target
    (the dry-run one) starts from them instead of from the floor."""
    fence: int = 0
    """Fencing token of the lease it was written under (0 = none)."""


class SaveResult(Enum):
    SAVED = "saved"
    FENCED = "fenced"
    """Not written: another daemon holds the deployment's lease now."""
    FAILED = "failed"
    """Not written: the store is unreachable."""


class StateStore(Protocol):
    async def load(
        self, deployment: str, policy_name: str, initial_policy_state: Any
    ) -> Saved | None:
        """The last saved state; a policy state written by another policy is replaced by
        ``initial_policy_state`` (the guardrails' part is kept)."""
        ...

    async def save(self, deployment: str, policy_name: str, saved: Saved) -> SaveResult:
        """Write ``saved``, but only while the lease ``saved.fence`` names is still this
        daemon's (a fence of 0 writes unconditionally)."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether state is being persisted. While it is not, the daemon cannot prove its
        delays to a successor, so it refuses to scale down (scaling up stays allowed)."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    status: Literal["held", "elsewhere", "unknown"]
    """``unknown``: the lease store did not answer."""
    fence: int = 0
    """Fencing token while held: it grows with every new holder of the deployment."""
    holder: str | None = None


class Leases(Protocol):
    """One owner per deployment at a time, with a fencing token, so that two daemons never
    act on one deployment: not while a Kafka rebalance is in flight, not after a stall."""

    async def acquire(self, deployment: str) -> Lease: ...

    def valid(self, deployment: str) -> int | None:
        """The fence of a lease this daemon holds and that has not expired by its own clock;
        no I/O, so it can be asked before every decision."""
        ...

    async def renew(self) -> None:
        """Extend every lease held; the ones found lost stop being valid."""
        ...

    async def release(self, deployment: str) -> None: ...

    def forget(self, deployment: str) -> None:
        """Stop treating the lease as held without touching the store (it was lost)."""
        ...
