"""What the KEDA-style policies (``queue``, ``metric``) share.

KEDA turns a scaler's reading into an HPA ``External`` metric of type ``AverageValue``: the HPA
wants ``ceil(value / target)`` replicas. KEDA itself only decides activation, from zero, when the
reading exceeds the scaler's activation threshold. The HPA it drives then applies its scale-down
stabilization window (300 s by default): a scale-down goes no lower than the largest
recommendation of the window. Not a policy itself: no ``SPEC`` here.
"""

from __future__ import annotations

import math

from autoscaler.core.window import History, record, window_max

_EPS = 1e-9
"""Float noise: 2.1 / 0.7 is 3.0000000000000004, which must not ask for a 4th replica."""


def average_value_replicas(
    value: float, target_per_replica: float, current_replicas: int, activation_threshold: float
) -> int:
    """Replicas for ``value`` at ``target_per_replica`` each; at zero replicas, none until
    ``value`` exceeds ``activation_threshold`` (KEDA's activation: strictly greater)."""
    if current_replicas == 0 and value <= activation_threshold:
        return 0
    return math.ceil(value / target_per_replica - _EPS)


def stabilize_scale_down(
    history: History, now: float, current_replicas: int, raw: int, window_s: float
) -> tuple[History, int]:
    """Record ``raw`` and return the updated history with the replicas to recommend: ``raw``
    when it is not a scale-down, else the largest recommendation over the last ``window_s``
    (never above current). The first call is seeded with ``current_replicas``: a restart must
    not be taken as permission to drop the stabilization that was in force."""
    history = record(history or ((now, current_replicas),), now, raw, window_s)
    if raw >= current_replicas:
        return history, raw
    highest = window_max(history, now, window_s)
    return history, min(current_replicas, highest if highest is not None else raw)


def stabilization_note(raw: int, desired: int, window_s: float) -> str:
    """The reason's suffix when stabilization held a scale-down back."""
    return f", held at {desired} by {window_s:g}s stabilization" if desired != raw else ""
