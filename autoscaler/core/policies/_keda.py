"""What the KEDA-style policies (``queue``, ``metric``) share.

KEDA turns a scaler's reading into an HPA ``External`` metric of type ``AverageValue``: the HPA
wants ``ceil(value / target)`` replicas. KEDA itself only decides activation, from zero, when the
reading exceeds the scaler's activation threshold. The HPA it drives then applies its scale-down
stabilization window (300 s by default): a scale-down goes no lower than the largest
recommendation of the window. That is the framework's ``scale_down_delay_s`` guardrail, which
these policies default to ``KEDA_STABILIZATION_S``. Not a policy itself: no ``SPEC`` here.
"""

from __future__ import annotations

import math

KEDA_STABILIZATION_S = 300.0
"""The HPA's default scale-down stabilization window, which KEDA leaves in force."""
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
