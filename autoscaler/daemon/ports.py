"""The small protocols each daemon stage sits behind, so adapters can be swapped: the event
sink the sources deliver to (the engine's front door), the dry-run or the Kubernetes actuator,
in-memory or Redis state and leases. Adapters depend on these, never on the engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

from autoscaler.core.decider import Decision, DecisionState
from autoscaler.core.events import Event, Rejected
from autoscaler.daemon.config import LimitsConfig
from autoscaler.daemon.metrics import DaemonMetrics

Clock = Callable[[], float]
"""Wall-clock seconds (``time.time`` in the daemon, a fake one in tests)."""

ACCEPTED_OUTCOMES = frozenset({"applied", "late", "finish_before_start"})
"""Tracker outcomes that changed what the tracker knows; the others (duplicate, stale,
expired_on_arrival) were looked at and dropped."""


@dataclass(slots=True)
class IngestResult:
    """What became of a batch of messages, for the producer (the HTTP answer) and tests."""

    accepted: int = 0
    """Events the tracker took (outcomes in ``ACCEPTED_OUTCOMES``)."""
    ignored: int = 0
    """Valid events the tracker dropped: duplicates, stale samples, starts already expired."""
    rejected: int = 0
    """Messages refused before the tracker: not events, or against a limit (``reasons``)."""
    unmanaged: int = 0
    """Events for deployments no policy rule matches."""
    outcomes: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """The first few rejections' details."""

    MAX_ERRORS = 5

    def reject(self, reason: str, detail: str) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.errors) < self.MAX_ERRORS:
            self.errors.append(f"{reason}: {detail}")

    def add(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.ignored += other.ignored
        self.rejected += other.rejected
        self.unmanaged += other.unmanaged
        for mine, theirs in ((self.outcomes, other.outcomes), (self.reasons, other.reasons)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.errors.extend(other.errors[: self.MAX_ERRORS - len(self.errors)])


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a delivery did: the batch's fate and the decisions it triggered."""

    result: IngestResult
    decisions: list[tuple[str, Decision]]


class EventSink(Protocol):
    """The engine's front door, as the sources see it: events in, decisions out.

    ``deliver`` is the whole of it for a source; a source that batches the decisions of many
    deliveries (Kafka, per poll) calls ``ingest`` and then ``decide_pending`` once."""

    metrics: DaemonMetrics
    limits: LimitsConfig
    clock: Clock

    async def deliver(self, items: Sequence[Event | Rejected], received: float) -> Delivery:
        """Apply ``items`` (received at ``received``) and decide what they made pending."""
        ...

    async def ingest(self, items: Sequence[Event | Rejected], received: float) -> IngestResult:
        """Apply ``items`` without deciding."""
        ...

    async def decide_pending(self) -> list[tuple[str, Decision]]:
        """Decide every deployment whose picture changed enough since the last call."""
        ...

    async def decide(self, name: str) -> Decision | None:
        """Decide ``name`` now (a reading changed, though no load did)."""
        ...

    def count_rejected(self, reason: str, detail: str) -> IngestResult:
        """A whole body refused before any event was decoded, counted like a rejected event."""
        ...

    def in_flight(self, deployment: str, request_id: str) -> bool:
        """Whether ``request_id`` is tracked as running on ``deployment``."""
        ...

    def tracks(self, deployment: str) -> bool:
        """Whether the deployment is tracked (not evicted, not handed off)."""
        ...

    async def hand_off(self, name: str) -> None:
        """Stop deciding ``name`` here: save its state and release its lease."""
        ...

    @property
    def store_healthy(self) -> bool:
        """Whether decision state is being persisted (the health probe says so)."""
        ...


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
