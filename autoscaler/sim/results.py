"""Per-policy results, aggregated over deployments, in the CLI's JSON contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

BEST_STATIC = "best_static"
REFERENCES = ("oracle", "work_bound", "hindsight", BEST_STATIC)
"""Result labels that are reference points, not policies: never the winner."""


@dataclass(frozen=True, slots=True)
class PolicyResult:
    policy: str
    requests: int
    served: int
    replica_seconds: float
    cost: float
    cold_start_waits: int
    scale_actions: int
    wait_p50_s: float
    wait_p95_s: float
    wait_p99_s: float
    slo_attainment: float
    scale_actions_per_hour: float | None = None
    """scale_actions / (trace span in hours x deployments); None for a zero-length trace."""
    cost_vs_oracle: float | None = None
    """cost / the reference's cost; None when that reference is absent or costs nothing."""
    cost_vs_hindsight: float | None = None
    cost_vs_best_static: float | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def wait_stats(
    waits: npt.NDArray[np.float64], slo_wait_s: float | npt.NDArray[np.float64]
) -> tuple[float, float, float, float]:
    """p50, p95, p99 of ``waits`` and the share within ``slo_wait_s``: one bound for all, or
    one per request (deployments scored against their own ``slo.wait_s``)."""
    if waits.size == 0:
        return 0.0, 0.0, 0.0, 1.0
    p50, p95, p99 = np.percentile(waits, [50, 95, 99])
    attained = float(np.count_nonzero(waits <= slo_wait_s + 1e-9)) / waits.size
    return float(p50), float(p95), float(p99), attained


def meets(result: PolicyResult, target: float) -> bool:
    # Attainment is a ratio of counts: allow for its rounding, not for a missed request.
    return result.slo_attainment >= target - 1e-12


def winner(results: Sequence[PolicyResult], target: float) -> str | None:
    """The cheapest policy that meets ``target`` attainment; if none does, the one with the
    highest attainment (the cheaper of equals). References never win."""
    candidates = [r for r in results if r.policy not in REFERENCES]
    if not candidates:
        return None
    meeting = [r for r in candidates if meets(r, target)]
    if meeting:
        return min(meeting, key=lambda r: (r.cost, r.replica_seconds)).policy
    return max(candidates, key=lambda r: (r.slo_attainment, -r.cost)).policy


def reference_label(policy: str, fleet: dict[str, int] | None) -> str:
    """``best_static (N=9)`` for one deployment, the total fleet for several."""
    if policy != BEST_STATIC or not fleet:
        return policy
    if len(fleet) == 1:
        return f"{policy} (N={next(iter(fleet.values()))})"
    return f"{policy} (N={sum(fleet.values())} over {len(fleet)} deployments)"
