"""A policy's ``settings_defaults``: beneath the files, for the effective policy only."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from autoscaler.cli import main
from autoscaler.config import registry
from autoscaler.config.loader import PolicyFileError, parse_policies
from autoscaler.core.policies.concurrency import SPEC as CONCURRENCY


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    registry.get_policy.cache_clear()
    yield
    registry.get_policy.cache_clear()


def policy_file(policy: str, extra: str = "", rule: str = "") -> str:
    text = f"defaults:\n  policy: {policy}\n{extra}"
    if rule:
        text += f"deployments:\n  - match: ns/*\n{rule}"
    return text


def test_concurrency_declares_the_hpa_downscale_stabilization() -> None:
    assert CONCURRENCY.settings_defaults == {"scale_down_delay_s": 30.0}


# (file, --compare override, annotation overrides, expected scale_down_delay_s)
DELAY = [
    pytest.param(policy_file("concurrency"), None, None, 30, id="concurrency-unset"),
    pytest.param(
        policy_file("concurrency", "  scale_down_delay_s: 0\n"), None, None, 0, id="explicit-0"
    ),
    pytest.param(
        policy_file("concurrency", rule="    scale_down_delay_s: 45\n"),
        None,
        None,
        45,
        id="set-by-a-rule",
    ),
    # no policy named at all: the built-in default policy is slo, whose delay is 60 s
    pytest.param("defaults:\n  max_replicas: 5\n", None, None, 60, id="implicit-slo"),
    pytest.param(policy_file("hpa"), None, None, 0, id="hpa-unchanged"),
    pytest.param(policy_file("kpa"), None, None, 0, id="kpa-unchanged"),
    # queue and metric: the HPA's 300 s stabilization that KEDA leaves in force
    pytest.param(policy_file("queue"), None, None, 300, id="queue-keda"),
    pytest.param(policy_file("metric"), None, None, 300, id="metric-keda"),
    # a rule switching the policy away from concurrency takes the new policy's defaults
    pytest.param(
        policy_file("concurrency", rule="    policy: hpa\n"), None, None, 0, id="rule-switches"
    ),
    # --compare: the override's defaults, never the file policy's
    pytest.param(policy_file("concurrency"), "hpa", None, 0, id="compare-hpa-over-concurrency"),
    pytest.param(policy_file("concurrency"), "queue", None, 300, id="compare-queue"),
    pytest.param(policy_file("hpa"), "concurrency", None, 30, id="compare-concurrency-over-hpa"),
    pytest.param(
        policy_file("hpa", "  scale_down_delay_s: 0\n"),
        "concurrency",
        None,
        0,
        id="compare-keeps-explicit",
    ),
    # a target's annotation sets the key: it wins like any file would
    pytest.param(
        policy_file("concurrency"), None, {"scale_down_delay_s": 0}, 0, id="annotation-wins"
    ),
    pytest.param(policy_file("hpa"), None, {"policy": "concurrency"}, 30, id="annotation-switches"),
]


@pytest.mark.parametrize(("text", "override", "annotations", "want"), DELAY)
def test_effective_scale_down_delay(
    text: str, override: str | None, annotations: dict[str, object] | None, want: float
) -> None:
    policy_set = parse_policies([("p.yaml", text)])
    resolved = policy_set.resolve("ns/model", policy_override=override, overrides=annotations)
    assert resolved.settings.scale_down_delay_s == want
    assert resolved.settings.policy == resolved.policy.name


def test_the_set_defaults_show_the_effective_value() -> None:
    policy_set = parse_policies([("p.yaml", policy_file("concurrency"))])
    assert policy_set.default_settings.scale_down_delay_s == 30
    assert policy_set.resolve("other/model").settings == policy_set.default_settings


def test_explain_shows_the_effective_value(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy_file("concurrency", "  max_replicas: 4\n"), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--log-json", "explain", "ns/model", "--policies", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["settings"]["scale_down_delay_s"] == 30


CLASHING_PLUGIN = textwrap.dedent("""
    from autoscaler.core.policies.concurrency import SPEC as _BASE
    from dataclasses import replace

    SPEC = replace(_BASE, name="wide", settings_defaults={"panic_window_s": 120})
""")


@pytest.fixture
def clashing_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(CLASHING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}:SPEC"
    sys.modules.pop(name, None)


def test_defaults_that_clash_with_the_files_fail_the_load_and_name_the_policy(
    clashing_plugin: str,
) -> None:
    # window_s 60 (built-in) < panic_window_s 120 (the plug-in's default): a load-time error
    with pytest.raises(PolicyFileError) as caught:
        parse_policies(
            [("p.yaml", f'defaults:\n  policy: "{clashing_plugin}"\n')],
            allowed_imports=(clashing_plugin,),
        )
    (problem,) = caught.value.problems
    assert problem.path == "defaults.panic_window_s"
    assert "must be <= window_s" in problem.rule
    assert "with policy wide's settings defaults {'panic_window_s': 120}" in problem.rule
    # the files set the key: theirs wins and nothing clashes
    ok = parse_policies(
        [("p.yaml", f'defaults:\n  policy: "{clashing_plugin}"\n  panic_window_s: 6\n')],
        allowed_imports=(clashing_plugin,),
    )
    assert ok.default_settings.panic_window_s == 6
