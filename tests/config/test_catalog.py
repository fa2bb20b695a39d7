"""Instance resolution against the bundled catalog: the smallest, cheapest satisfying type."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from autoscaler.config.catalog import (
    Catalog,
    NoInstanceError,
    load_catalog,
    resolve_instance,
    satisfies,
)
from autoscaler.config.models import InstanceSpec

CATALOG = load_catalog()


def spec(**kw: object) -> InstanceSpec:
    return InstanceSpec.model_validate(kw)


@pytest.mark.parametrize(
    ("constraints", "name"),
    [
        pytest.param({}, "cpu-1x2", id="defaults-1cpu-2Gi"),
        pytest.param({"cpu": "500m"}, "cpu-1x2", id="500m"),
        pytest.param({"cpu": "1", "memory": "3Gi"}, "cpu-1x4", id="1cpu-3Gi"),
        pytest.param({"cpu": "1", "memory": "4Gi"}, "cpu-1x4", id="1cpu-4Gi-exact"),
        pytest.param({"cpu": "1", "memory": "4294967297"}, "cpu-2x8", id="4Gi-plus-1-byte"),
        pytest.param({"cpu": "2"}, "cpu-2x8", id="2cpu"),
        pytest.param({"cpu": "1001m"}, "cpu-2x8", id="1001m"),
        pytest.param({"cpu": "3"}, "cpu-4x16", id="3cpu"),
        pytest.param({"cpu": "4"}, "cpu-4x16", id="4cpu"),
        pytest.param({"cpu": 4}, "cpu-4x16", id="4cpu-int"),
        pytest.param({"cpu": "5"}, "cpu-8x32", id="5cpu"),
        pytest.param({"cpu": "6"}, "cpu-8x32", id="6cpu"),
        pytest.param({"cpu": "8"}, "cpu-8x32", id="8cpu"),
        pytest.param({"cpu": "8001m"}, "cpu-16x64", id="8001m"),
        pytest.param({"memory": "16Gi"}, "cpu-4x16", id="16Gi-exact"),
        pytest.param({"memory": "16G"}, "cpu-4x16", id="16G-is-less-than-16Gi"),
        pytest.param({"memory": "17179869185"}, "cpu-8x32", id="16Gi-plus-1-byte"),
        pytest.param({"memory": "17Gi"}, "cpu-8x32", id="17Gi"),
        pytest.param({"memory": "32000M"}, "cpu-8x32", id="32000M"),
        pytest.param({"memory": "64Gi"}, "cpu-16x64", id="64Gi"),
        pytest.param({"cpu": "16", "memory": "64Gi"}, "cpu-16x64", id="largest-cpu"),
        pytest.param({"accelerator": "A10G", "use_gpu": True}, "a10g-4x16", id="A10G"),
        pytest.param(
            {"accelerator": "A10G", "use_gpu": True, "cpu": "6"}, "a10g-8x32", id="A10G-6cpu"
        ),
        pytest.param(
            {"accelerator": "A10G", "use_gpu": True, "memory": "48Gi"},
            "a10g-2x-24x96",
            id="A10G-48Gi",
        ),
        pytest.param({"accelerator": "A10G:2", "use_gpu": True}, "a10g-2x-24x96", id="A10G:2"),
        pytest.param({"accelerator": "H100", "use_gpu": True}, "h100-26x234", id="H100"),
        pytest.param({"accelerator": "H100:2", "use_gpu": True}, "h100-2x-52x468", id="H100:2"),
        pytest.param({"accelerator": "H100:3", "use_gpu": True}, "h100-8x-208x1872", id="H100:3"),
        pytest.param({"accelerator": "T4", "use_gpu": True}, "t4-4x16", id="T4"),
        pytest.param({"use_gpu": True}, "t4-4x16", id="any-gpu-cheapest"),
        pytest.param({"use_gpu": True, "cpu": "8"}, "a10g-8x32", id="any-gpu-8cpu"),
        pytest.param({"use_gpu": True, "memory": "100Gi"}, "a100-12x144", id="any-gpu-100Gi"),
    ],
)
def test_resolve(constraints: dict[str, object], name: str) -> None:
    chosen = resolve_instance(CATALOG, spec(**constraints))
    assert chosen.name == name


@pytest.mark.parametrize(
    "constraints",
    [
        # a CPU-only deployment never gets a GPU instance, even when only one would fit
        pytest.param({"cpu": "17"}, id="cpu-only-17cpu"),
        pytest.param({"memory": "65Gi"}, id="cpu-only-65Gi"),
        pytest.param({"accelerator": "H100:16", "use_gpu": True}, id="too-many-gpus"),
        pytest.param({"accelerator": "B200", "use_gpu": True}, id="unknown-gpu"),
        pytest.param({"accelerator": "T4", "use_gpu": True, "cpu": "5"}, id="T4-too-small"),
        pytest.param({"use_gpu": True, "cpu": "209"}, id="gpu-too-many-cpus"),
    ],
)
def test_impossible(constraints: dict[str, object]) -> None:
    with pytest.raises(NoInstanceError, match="no instance type satisfies"):
        resolve_instance(CATALOG, spec(**constraints))


def test_cpu_only_never_on_gpu() -> None:
    cpu_only = spec(cpu="4", memory="16Gi")
    fitting = [i.name for i in CATALOG.instance_types if satisfies(i, cpu_only)]
    assert fitting == ["cpu-4x16", "cpu-8x32", "cpu-16x64"]


def test_accelerator_requires_use_gpu() -> None:
    with pytest.raises(ValidationError, match="must be true when accelerator is set"):
        spec(accelerator="A10G")


def test_ties_go_to_the_smallest(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "instance_types:\n"
        "  - {name: big, cpu: '8', memory: 32Gi, price_per_hour: 0.1}\n"
        "  - {name: small, cpu: '4', memory: 16Gi, price_per_hour: 0.1}\n"
        "  - {name: pricey, cpu: '2', memory: 8Gi, price_per_hour: 0.2}\n"
    )
    catalog = load_catalog(path)
    assert resolve_instance(catalog, spec(cpu="2")).name == "small"
    assert resolve_instance(catalog, spec(cpu="5")).name == "big"


def test_describe() -> None:
    by_name = {i.name: i for i in CATALOG.instance_types}
    assert by_name["h100-2x-52x468"].describe() == "h100-2x-52x468 (52 CPU, 468Gi, 2x H100, $13/h)"
    assert by_name["cpu-1x2"].describe() == "cpu-1x2 (1 CPU, 2Gi, $0.035/h)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("instance_types: []\n", "at least 1 item", id="empty"),
        pytest.param(
            "instance_types:\n  - {name: x, cpu: 2x, memory: 1Gi, price_per_hour: 1}\n",
            "unknown suffix 'x'",
            id="bad-cpu",
        ),
        pytest.param(
            "instance_types:\n  - {name: x, cpu: 1, memory: 1Gi}\n", "price_per_hour", id="no-price"
        ),
        pytest.param("instance_types: [\n", "invalid instance catalog", id="bad-yaml"),
    ],
)
def test_bad_catalog(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_catalog(path)
    assert str(info.value).startswith(f"{path}: invalid instance catalog: ")


def test_bundled_catalog_is_valid() -> None:
    assert isinstance(CATALOG, Catalog)
    assert len({i.name for i in CATALOG.instance_types}) == len(CATALOG.instance_types)
