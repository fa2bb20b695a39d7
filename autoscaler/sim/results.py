"""Per-policy results, aggregated over deployments, in the CLI's JSON contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def wait_stats(
    waits: np.typing.NDArray[np.float64], slo_wait_s: float
) -> tuple[float, float, float, float]:
    if waits.size == 0:
        return 0.0, 0.0, 0.0, 1.0
    p50, p95, p99 = np.percentile(waits, [50, 95, 99])
    attained = float(np.count_nonzero(waits <= slo_wait_s + 1e-9)) / waits.size
    return float(p50), float(p95), float(p99), attained
