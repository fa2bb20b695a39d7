"""An actuator that applies nothing: it logs each decision it would apply and remembers the
count, so the next decision starts from it (replicas are taken as ready at once)."""

from __future__ import annotations

import structlog

from autoscaler.core.decider import Decision
from autoscaler.daemon.ports import Observed

log = structlog.get_logger("autoscaler.actuator.dry_run")


class DryRunActuator:
    def __init__(self) -> None:
        self.replicas: dict[str, int] = {}
        self.applied: list[tuple[str, int, int]] = []
        """Every change it was asked for: (deployment, from, to)."""

    async def observe(self, deployment: str) -> Observed | None:
        replicas = self.replicas.get(deployment)
        return None if replicas is None else Observed(replicas, replicas)

    async def apply(self, deployment: str, decision: Decision, fence: int) -> None:
        if decision.changed:
            self.applied.append((deployment, decision.current, decision.replicas))
            log.info(
                "would scale",
                deployment=deployment,
                current=decision.current,
                replicas=decision.replicas,
                fence=fence,
                reason=decision.reason,
            )
        self.replicas[deployment] = decision.replicas
