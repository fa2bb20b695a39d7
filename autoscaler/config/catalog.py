"""Instance types and the resolver that picks the smallest, cheapest one for a deployment.

"3" or "4" CPUs get a 4-core instance, "5" to "8" an 8-core one; memory is compared in exact
bytes. A CPU-only deployment never lands on a GPU instance.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from autoscaler.config.models import CpuQuantity, FrozenModel, InstanceSpec, MemoryQuantity
from autoscaler.config.units import (
    format_cpu,
    format_memory,
    parse_cpu_millis,
    parse_memory_bytes,
)
from autoscaler.paths import BUNDLED_CATALOG


class InstanceType(FrozenModel):
    name: str = Field(min_length=1)
    cpu: CpuQuantity
    memory: MemoryQuantity
    accelerator: str | None = None
    count: int = Field(default=0, ge=0, description="number of accelerators")
    price_per_hour: float = Field(ge=0)

    @property
    def cpu_millis(self) -> int:
        return parse_cpu_millis(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return parse_memory_bytes(self.memory)

    @property
    def gpus(self) -> int:
        return self.count if self.accelerator else 0

    def describe(self) -> str:
        gpu = f", {self.count}x {self.accelerator}" if self.accelerator else ""
        return (
            f"{self.name} ({format_cpu(self.cpu_millis)} CPU, {format_memory(self.memory_bytes)}"
            f"{gpu}, ${self.price_per_hour:g}/h)"
        )


class Catalog(FrozenModel):
    instance_types: tuple[InstanceType, ...] = Field(min_length=1)


class NoInstanceError(LookupError):
    pass


def satisfies(instance: InstanceType, spec: InstanceSpec) -> bool:
    if instance.cpu_millis < spec.cpu_millis or instance.memory_bytes < spec.memory_bytes:
        return False
    wanted = spec.accelerator_type
    if not spec.use_gpu:
        return instance.gpus == 0
    if instance.gpus == 0:
        return False
    if wanted is None:
        return True
    name, count = wanted
    return instance.accelerator == name and instance.count >= count


def resolve_instance(catalog: Catalog, spec: InstanceSpec) -> InstanceType:
    """The cheapest satisfying type; ties go to the smallest (fewest GPUs, CPUs, bytes)."""
    candidates = [i for i in catalog.instance_types if satisfies(i, spec)]
    if not candidates:
        raise NoInstanceError(
            f"no instance type satisfies cpu={spec.cpu} memory={spec.memory} "
            f"accelerator={spec.accelerator} use_gpu={spec.use_gpu}"
        )
    return min(candidates, key=lambda i: (i.price_per_hour, i.gpus, i.cpu_millis, i.memory_bytes))


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog at ``path``, or the bundled one."""
    if path is None:
        path = BUNDLED_CATALOG
    text = path.read_text(encoding="utf-8")
    source = str(path)
    try:
        return Catalog.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ValueError(f"{source}: invalid instance catalog: {exc}") from exc
