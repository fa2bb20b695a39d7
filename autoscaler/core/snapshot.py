"""What a policy sees: an immutable snapshot of one deployment at one instant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a policy may base a decision on. ``now`` is unix seconds, passed in.

    Load is counted as ``in_flight + queue_length``: requests being served plus requests
    waiting for a slot (in the serving system's queue or an upstream message queue).
    """

    now: float
    deployment: str
    settings: Settings
    current_replicas: int
    """Replicas asked for (``spec.replicas``), ready or still starting."""
    ready_replicas: int
    """Replicas ready to take work; ``current - ready`` are cold-starting."""
    in_flight: int
    """Requests started and not yet finished (or expired)."""
    queue_length: float
    """Requests waiting for a slot, as last reported."""
    stable_load: float
    """Time-weighted mean of ``in_flight + queue_length`` over ``settings.window_s``."""
    panic_load: float
    """The same mean over ``settings.panic_window_s``."""
    history_s: float
    """Seconds of observation behind the windows; below ``window_s`` right after a start."""
    idle_s: float
    """Seconds since the deployment last had work in flight or queued (0 while it has)."""
    stable_in_flight: float | None = None
    """Mean of ``in_flight`` alone over ``window_s`` (None where the source cannot tell)."""
    panic_in_flight: float | None = None
    """Mean of ``in_flight`` alone over ``panic_window_s``."""
    service_s: float | None = None
    """Recent mean seconds from a request's start to its finish; None before any finished."""
    service_scv: float | None = None
    """Squared coefficient of variation of those durations (variance / mean^2); None before
    two finished."""
    service_samples: int = 0
    """Completions behind ``service_s`` (capped at ``measures.SERVICE_MEMORY``): how far a
    policy's prior should still weigh."""
    arrival_rate: float | None = None
    """Arrivals per second over ``settings.window_s``: request starts plus queue growth. None
    when the deployment sends no request events (gauges only): use Little's law instead."""
    arrival_recent: float | None = None
    """The same over the last ``measures.PEAK_WINDOW_S`` (30 s)."""
    arrival_history: tuple[float, ...] = ()
    """Arrivals per second in each completed ``measures.RATE_BUCKET_S`` bucket of the last
    ``measures.RATE_HISTORY_S``, oldest first: for peaks and trends over any look-back."""
    cold_start_s: float | None = None
    """Observed seconds from a scale-up asked for to its replicas ready; None until seen."""
    signals: Mapping[str, float] = field(default_factory=dict)
    """Latest reading of each named signal (``signal`` events, e.g. a Prometheus query result)
    for policies that want them; a name with no reading for ``SIGNAL_TTL_S`` is absent."""
    state_persisted: bool = True
    """Whether this decision's state can be handed to a successor (the state store is up and
    the lease was checked). When it cannot, a successor could not honour this decision's
    delays, so the guardrails refuse scale-downs. The simulator and a replay pass what the
    daemon saw."""

    @property
    def load(self) -> float:
        return self.in_flight + self.queue_length

    @property
    def has_work(self) -> bool:
        return self.in_flight > 0 or self.queue_length > 0
