"""The policy-file loader: merging, resolution, plug-ins and the exact error lines."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.config import registry
from autoscaler.config.catalog import load_catalog
from autoscaler.config.loader import PolicyFileError, load_policies, parse_policies
from autoscaler.core.policies.concurrency import ConcurrencyParams
from autoscaler.core.policies.queue import QueueParams
from autoscaler.core.snapshot import Snapshot

SETTINGS_KEYS = (
    "decision_period_s, instance, max_replicas, max_request_duration_s, max_scale_down_rate, "
    "max_scale_up_rate, "
    "min_replicas, panic_window_s, parallelism, params, policy, scale_down_delay_s, "
    "scale_down_interval_s, scale_to_zero_grace_s, scale_up_delay_s, scale_up_interval_s, "
    "schedule, slo, target_utilization, window_s"
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    registry.get_policy.cache_clear()
    yield
    registry.get_policy.cache_clear()


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


DEFAULTS = y("""
    defaults:
      policy: concurrency
      min_replicas: 1
      max_replicas: 20
      parallelism: 4
      params: {panic_threshold: 3}
      instance: {cpu: "4", memory: 16Gi}
""")
DEPLOYMENTS = y("""
    deployments:
      - match: prod/*
        min_replicas: 2
        instance: {memory: 32Gi}
      - match: [prod/llm, staging/llm]
        min_replicas: 3
        params: {target_per_replica: 2}
      - match: batch/*
        policy: queue
        min_replicas: 0
      - match: batch/special
        policy: queue
        params: {activation_threshold: 5}
""")


@pytest.fixture
def policy_set_files(tmp_path: Path) -> Path:
    (tmp_path / "00-defaults.yaml").write_text(DEFAULTS)
    (tmp_path / "10-deployments.yml").write_text(DEPLOYMENTS)
    return tmp_path


def test_multi_file_set(policy_set_files: Path) -> None:
    ps = load_policies([policy_set_files])
    assert [Path(f).name for f in ps.files] == ["00-defaults.yaml", "10-deployments.yml"]
    assert [r.index for r in ps.rules] == [0, 1, 2, 3]
    assert ps.default_settings.max_replicas == 20

    llm = ps.resolve("prod/llm")
    assert [r.index for r in llm.rules] == [0, 1]
    assert llm.settings.min_replicas == 3  # later rules override earlier
    assert llm.settings.max_replicas == 20
    assert llm.settings.parallelism == 4
    # instance mappings merge key by key
    assert (llm.settings.instance.cpu, llm.settings.instance.memory) == ("4", "32Gi")
    # params of the same policy merge too
    assert llm.params == ConcurrencyParams(panic_threshold=3, target_per_replica=2)

    web = ps.resolve("prod/web")
    assert web.settings.min_replicas == 2
    assert web.params == ConcurrencyParams(panic_threshold=3)

    # switching policy drops the old policy's params
    batch = ps.resolve("batch/etl")
    assert batch.policy.name == "queue"
    assert batch.params == QueueParams()
    assert batch.settings.min_replicas == 0
    special = ps.resolve("batch/special")
    assert special.params == QueueParams(activation_threshold=5)


def test_unmatched_gets_defaults(policy_set_files: Path) -> None:
    ps = load_policies([policy_set_files])
    other = ps.resolve("dev/thing")
    assert other.rules == ()
    assert not ps.manages("dev/thing")
    assert ps.manages("staging/llm")
    assert other.settings == ps.default_settings
    assert other.policy.name == "concurrency"
    assert other.params == ConcurrencyParams(panic_threshold=3)


def test_resolve_is_cached_and_takes_a_catalog(policy_set_files: Path) -> None:
    ps = load_policies([policy_set_files])
    first = ps.resolve("prod/web")
    assert ps.resolve("prod/web") is first
    assert first.instance is None
    with_instance = ps.resolve("prod/web", catalog=load_catalog())
    assert with_instance.instance is not None
    assert with_instance.instance.name == "cpu-8x32"  # 4 CPUs, 32Gi
    assert ps.resolve("dev/x", catalog=load_catalog()).instance.name == "cpu-4x16"  # type: ignore[union-attr]


def test_policy_override(policy_set_files: Path) -> None:
    ps = load_policies([policy_set_files])
    queued = ps.resolve("prod/web", policy_override="queue")
    assert queued.policy.name == "queue"
    assert queued.params == QueueParams()
    assert queued.settings.min_replicas == 2
    # overriding with the policy already in force keeps its params
    same = ps.resolve("prod/web", policy_override="concurrency")
    assert same.params == ConcurrencyParams(panic_threshold=3)
    assert ps.resolve("prod/web").policy.name == "concurrency"
    with pytest.raises(PolicyFileError) as info:
        ps.resolve("prod/web", policy_override="nosuch")
    assert str(info.value) == (
        'prod/web (rules: 10-deployments.yml: deployments[0]): policy="nosuch": '
        "unknown policy (known: concurrency, hpa, kpa, metric, queue, slo)"
    ).replace("10-deployments.yml", str(policy_set_files / "10-deployments.yml"))


def test_resolve_reports_conflicts_between_rules() -> None:
    ps = parse_policies(
        [
            (
                "p.yaml",
                y("""
                deployments:
                  - match: a/*
                    max_replicas: 3
                  - match: a/b
                    min_replicas: 5
                """),
            )
        ]
    )
    assert ps.resolve("a/c").settings.max_replicas == 3
    with pytest.raises(PolicyFileError) as info:
        ps.resolve("a/b")
    assert str(info.value) == (
        "a/b (rules: p.yaml: deployments[0], p.yaml: deployments[1]): "
        "min_replicas=5: must be <= max_replicas (3)"
    )


def test_resolve_with_impossible_instance() -> None:
    ps = parse_policies([("p.yaml", "defaults:\n  instance: {cpu: '300'}\n")])
    with pytest.raises(PolicyFileError, match="no instance type satisfies cpu=300"):
        ps.resolve("a/b", catalog=load_catalog())


def test_params_survive_restating_the_same_policy() -> None:
    # defaults name concurrency; restating it in a rule keeps the params
    ps = parse_policies(
        [
            (
                "p.yaml",
                y("""
                defaults:
                  policy: concurrency
                  params: {panic_threshold: 3}
                deployments:
                  - match: a/b
                    policy: concurrency
                    min_replicas: 2
                """),
            )
        ]
    )
    assert ps.resolve("a/b").params == ConcurrencyParams(panic_threshold=3)


def test_switching_policy_with_own_params() -> None:
    ps = parse_policies(
        [
            (
                "p.yaml",
                y("""
                defaults:
                  policy: concurrency
                  params: {panic_threshold: 3}
                deployments:
                  - match: a/b
                    policy: queue
                    params: {activation_threshold: 2}
                """),
            )
        ]
    )
    assert ps.resolve("a/b").params == QueueParams(activation_threshold=2)


def test_configmap_mount(tmp_path: Path) -> None:
    """A Kubernetes ConfigMap volume: files are symlinks into ``..data``, which links to a
    timestamped hidden folder; hidden entries are skipped, so nothing is read twice."""
    version = tmp_path / "..2026_11_23_07_00_00.123"
    version.mkdir()
    (version / "policies.yaml").write_text(DEFAULTS)
    (tmp_path / "..data").symlink_to(version.name)
    (tmp_path / "policies.yaml").symlink_to("..data/policies.yaml")
    (tmp_path / ".old.yaml").write_text("not: [valid\n")
    (tmp_path / "README.txt").write_text("ignored")
    ps = load_policies([tmp_path])
    assert ps.files == (str(tmp_path / "policies.yaml"),)
    assert ps.default_settings.max_replicas == 20


def test_no_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as info:
        load_policies([tmp_path])
    assert str(info.value) == "<policies>: no policy files found"


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PolicyFileError) as info:
        load_policies([missing])
    assert str(info.value) == f"{missing}: cannot read: No such file or directory"


BAD = [
    pytest.param(
        y("""
        deployments:
          - match: a/b
          - match: a/c
          - match: prod/*
            min_replicas: 12
        """),
        "5: deployments[2].min_replicas=12: must be <= max_replicas (10)",
        id="min-over-max",
    ),
    pytest.param(
        "defaults:\n  min_replicas: 3\n  max_replicas: 2\n",
        "2: defaults.min_replicas=3: must be <= max_replicas (2)",
        id="defaults-min-over-max",
    ),
    pytest.param(
        "defaults:\n  min_replica: 1\n",
        f"2: defaults.min_replica=1: unknown key (known: {SETTINGS_KEYS})",
        id="unknown-default-key",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    bogus: 1\n",
        f"3: deployments[0].bogus=1: unknown key (known: {SETTINGS_KEYS})",
        id="unknown-rule-key",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    instance: {gpu: 1}\n",
        "3: deployments[0].instance.gpu=1: unknown key",
        id="unknown-instance-key",
    ),
    pytest.param("foo: 1\n", "1: foo=1: unknown key (known: defaults, deployments)", id="top-key"),
    pytest.param(
        "- 1\n", "1: top level must be a mapping with 'defaults' and/or 'deployments'", id="list"
    ),
    pytest.param(
        "defaults: [1]\n", "1: defaults=[1]: must be a mapping of settings", id="defaults-list"
    ),
    pytest.param(
        "deployments: {a: 1}\n",
        """1: deployments={"a":1}: must be a list of entries with 'match'""",
        id="deployments-mapping",
    ),
    pytest.param(
        "deployments:\n  - prod/*\n",
        """2: deployments[0]="prod/*": must be a mapping with 'match' and settings""",
        id="entry-not-mapping",
    ),
    pytest.param(
        "deployments:\n  - match: Prod/*\n",
        "2: "
        """deployments[0].match="Prod/*": must be a 'namespace/name' glob or a list of them """
        "(e.g. prod/*)",
        id="glob-uppercase",
    ),
    pytest.param(
        "deployments:\n  - match: prod\n",
        "2: "
        """deployments[0].match="prod": must be a 'namespace/name' glob or a list of them """
        "(e.g. prod/*)",
        id="glob-no-namespace",
    ),
    pytest.param(
        "deployments:\n  - match: [a/b, 'x y/z']\n",
        "2: "
        """deployments[0].match=["a/b","x y/z"]: must be a 'namespace/name' glob or a list """
        "of them (e.g. prod/*)",
        id="glob-list-with-space",
    ),
    pytest.param(
        "deployments:\n  - min_replicas: 2\n",
        "2: "
        "deployments[0].match=null: must be a 'namespace/name' glob or a list of them "
        "(e.g. prod/*)",
        id="no-match",
    ),
    pytest.param(
        "defaults:\n  policy: nosuch\n",
        '2: defaults.policy="nosuch": unknown policy '
        "(known: concurrency, hpa, kpa, metric, queue, slo)",
        id="unknown-policy",
    ),
    pytest.param(
        "defaults:\n  policy: concurrency\n  params: {panic_threshold: 0.5}\n",
        "3: defaults.params.panic_threshold=0.5: Input should be greater than 1",
        id="concurrency-panic-threshold",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    policy: queue\n    params: {activation_threshold: -1}\n",
        "4: "
        "deployments[0].params.activation_threshold=-1: Input should be greater than or equal to 0",
        id="queue-activation",
    ),
    pytest.param(
        "defaults:\n  params: {panik: 3}\n",
        "2: "
        "defaults.params.panik=3: unknown key "
        "(known: budget_spend_s, budget_window_s, burst_memory_s, expected_cold_start_s, "
        "prior_samples, service_s_prior, "
        "service_scv_prior)",
        id="unknown-param",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '25:00', end: '06:00', min_replicas: 2}\n",
        "3: "
        """defaults.schedule[0].start="25:00": must be a time of day HH:MM (00:00 to 24:00)""",
        id="schedule-bad-time",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '22:00', end: '06:00'}\n",
        "3: "
        "defaults.schedule[0].min_replicas=null: a schedule rule needs min_replicas or "
        "max_replicas",
        id="schedule-no-bounds",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '08:00', end: '08:00', min_replicas: 1}\n",
        """3: defaults.schedule[0].end="08:00": must differ from start""",
        id="schedule-empty",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '22:00', end: '06:00', timezone: Mars/Base, "
        "min_replicas: 1}\n",
        "3: "
        """defaults.schedule[0].timezone="Mars/Base": must be an IANA time zone such as 'UTC' """
        "or 'Europe/Berlin'",
        id="schedule-timezone",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {days: [funday], start: '08:00', end: '18:00', "
        "min_replicas: 1}\n",
        "3: "
        """defaults.schedule[0].days[0]="funday": Input should be 'mon', 'tue', 'wed', 'thu', """
        "'fri', 'sat', 'sun', 'weekdays', 'weekends' or 'daily'",
        id="schedule-day",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    max_replicas: 5\n    schedule:\n"
        "      - {start: '08:00', end: '18:00', min_replicas: 6}\n",
        "5: deployments[0].schedule[0].min_replicas=6: must be <= max_replicas (5)",
        id="schedule-min-over-max",
    ),
    pytest.param(
        "defaults:\n  min_replicas: 2\n  schedule:\n"
        "    - {start: '08:00', end: '18:00', max_replicas: 1}\n",
        "4: defaults.schedule[0].max_replicas=1: must be >= min_replicas (2)",
        id="schedule-max-under-min",
    ),
    pytest.param(
        "defaults:\n  window_s: 5\n",
        "1: defaults.panic_window_s=6.0: must be <= window_s (5.0)",
        id="panic-window-over-window",
    ),
    pytest.param(
        "defaults:\n  instance: {cpu: 2x}\n",
        """2: defaults.instance.cpu="2x": cpu '2x' has unknown suffix 'x' (use none or 'm')""",
        id="instance-cpu",
    ),
    pytest.param(
        "defaults:\n  instance: {accelerator: A10G}\n",
        "2: defaults.instance.use_gpu=false: must be true when accelerator is set (A10G)",
        id="accelerator-without-use-gpu",
    ),
    pytest.param(
        "defaults:\n  window_s: .inf\n",
        "2: defaults.window_s=Infinity: must be a finite number",
        id="infinite-window",
    ),
    pytest.param(
        "defaults:\n  max_scale_up_rate: 1\n",
        "2: defaults.max_scale_up_rate=1: Input should be greater than 1",
        id="rate-1",
    ),
]


BAD += [
    pytest.param(
        "defaults:\n  schedule:\n"
        "    - {start: '08:00', end: '18:00', min_replicas: 3, max_replicas: 2}\n",
        "3: defaults.schedule[0].min_replicas=3: must be <= max_replicas (2)",
        id="schedule-rule-min-over-its-max",
    ),
    pytest.param(
        "defaults:\n  panic_window_s: .inf\n",
        "2: defaults.panic_window_s=Infinity: must be a finite number",
        id="infinite-panic-window",
    ),
]


@pytest.mark.parametrize(("text", "line"), BAD)
def test_bad_file(text: str, line: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("policies/prod.yaml", text)])
    assert str(info.value) == f"policies/prod.yaml:{line}"


def test_bad_yaml() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("p.yaml", "defaults: [\n")])
    (problem,) = info.value.problems
    # The file and the line:column, not `<unicode string>`.
    assert str(problem) == (
        "p.yaml:2:1: invalid YAML: while parsing a flow node: "
        "expected the node content, but found '<stream end>'"
    )


def test_every_problem_at_once() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [
                ("a.yaml", "defaults:\n  max_replicas: 0\n"),
                ("b.yaml", "deployments:\n  - match: x\n  - match: a/b\n    parallelism: 0\n"),
            ]
        )
    assert str(info.value).splitlines() == [
        "a.yaml:2: defaults.max_replicas=0: Input should be greater than or equal to 1",
        """b.yaml:2: deployments[0].match="x": must be a 'namespace/name' glob or a list of """
        "them (e.g. prod/*)",
        "b.yaml:4: deployments[1].parallelism=0: Input should be greater than or equal to 1",
    ]


def test_defaults_problem_names_the_file_that_set_the_key() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [
                ("a.yaml", "defaults:\n  policy: concurrency\n  max_replicas: 10\n"),
                ("b.yaml", "defaults:\n  min_replicas: 20\n"),
            ]
        )
    assert str(info.value) == "b.yaml:2: defaults.min_replicas=20: must be <= max_replicas (10)"


def test_later_defaults_override_earlier() -> None:
    ps = parse_policies(
        [
            ("a.yaml", "defaults:\n  max_replicas: 10\n  instance: {cpu: '2'}\n"),
            ("b.yaml", "defaults:\n  max_replicas: 30\n  instance: {memory: 8Gi}\n"),
        ]
    )
    s = ps.default_settings
    assert (s.max_replicas, s.instance.cpu, s.instance.memory) == (30, "2", "8Gi")


# --- plug-ins ----------------------------------------------------------------------------

PLUGIN = y("""
    from dataclasses import dataclass

    from autoscaler.core.policy import PolicyParams, PolicySpec, Recommendation


    @dataclass(frozen=True, slots=True, kw_only=True)
    class FixedParams(PolicyParams):
        replicas: int = 1


    class Fixed:
        def __init__(self, params):
            self.params = params

        def initial_state(self):
            return None

        def recommend(self, snapshot, state):
            return Recommendation(self.params.replicas, None, "fixed")


    SPEC = PolicySpec(name="fixed", params_type=FixedParams, factory=Fixed)
    NOT_A_SPEC = {"name": "fixed"}
""")


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_plugin_policy(plugin: str) -> None:
    ps = parse_policies(
        [
            (
                "p.yaml",
                f'deployments:\n  - match: ml/*\n    policy: "{plugin}:SPEC"\n'
                "    params: {replicas: 4}\n",
            )
        ],
        allowed_imports=(f"{plugin}:SPEC",),
    )
    resolved = ps.resolve("ml/model")
    assert resolved.policy.name == "fixed"
    assert dataclasses.asdict(resolved.params) == {"replicas": 4}
    built = resolved.policy.build(resolved.params)
    snapshot = Snapshot(
        now=0.0,
        deployment="ml/model",
        settings=resolved.settings,
        current_replicas=1,
        ready_replicas=1,
        in_flight=0,
        queue_length=0.0,
        stable_load=0.0,
        panic_load=0.0,
        history_s=0.0,
        idle_s=0.0,
    )
    assert built.recommend(snapshot, built.initial_state()).replicas == 4


def test_plugin_bad_params(plugin: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [("p.yaml", f"defaults:\n  policy: {plugin}:SPEC\n  params: {{x: 1}}\n")],
            allowed_imports=(f"{plugin}:SPEC",),
        )
    assert str(info.value) == "p.yaml:3: defaults.params.x=1: unknown key (known: replicas)"


@pytest.mark.parametrize(
    ("attr", "rule"),
    [
        pytest.param(
            "NOT_A_SPEC",
            "'{m}:NOT_A_SPEC' is not an autoscaler.core.policy.PolicySpec",
            id="not-a-spec",
        ),
        pytest.param("NOPE", "'{m}' has no attribute 'NOPE'", id="no-attribute"),
    ],
)
def test_plugin_rejected(plugin: str, attr: str, rule: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [("p.yaml", f"defaults:\n  policy: {plugin}:{attr}\n")],
            allowed_imports=(f"{plugin}:{attr}",),
        )
    assert str(info.value) == (
        f'p.yaml:2: defaults.policy="{plugin}:{attr}": {rule.format(m=plugin)}'
    )


def test_plugin_module_missing() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [("p.yaml", "defaults:\n  policy: no_such_module_xyz:SPEC\n")],
            allowed_imports=("no_such_module_xyz:SPEC",),
        )
    assert str(info.value) == (
        'p.yaml:2: defaults.policy="no_such_module_xyz:SPEC": '
        "cannot import 'no_such_module_xyz': No module named 'no_such_module_xyz'"
    )


def test_plugin_import_path_needs_the_allow_list(plugin: str) -> None:
    # A file that names an import path nobody allowed is refused before anything is imported.
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("p.yaml", f"defaults:\n  policy: {plugin}:SPEC\n")])
    assert "import paths must be listed in allowed_policy_imports" in str(info.value)
    assert plugin not in sys.modules


def test_allow_list_is_kept_for_files_but_not_for_annotations(plugin: str) -> None:
    path = f"{plugin}:SPEC"
    ps = parse_policies(
        [("p.yaml", f"deployments:\n  - match: ml/*\n    policy: {path}\n")],
        allowed_imports=(path,),
    )
    assert ps.allowed_imports == (path,)
    assert ps.resolve("ml/a", overrides={"min_replicas": 2}).policy.name == "fixed"
    with pytest.raises(PolicyFileError, match="allowed_policy_imports"):
        ps.resolve("other/a", overrides={"policy": path})
    with pytest.raises(PolicyFileError, match="allowed_policy_imports"):
        ps.resolve("other/a", policy_override=path)


def test_empty_files_are_valid() -> None:
    ps = parse_policies([("a.yaml", ""), ("b.yaml", "deployments:\n")])
    assert ps.rules == ()
    assert ps.default_settings.max_replicas == 10
    assert ps.resolve("any/thing").policy.name == "slo"


# --- issue 9, item 5: files that crashed, stalled or flooded the loader ------------------


def billion_laughs() -> str:
    lines = ["defaults:", "  params: &l0 {a: [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]}"]
    lines.append("deployments:")
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  - &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


HOSTILE = [
    pytest.param(
        "defaults:\n  params: " + "[" * 5000 + "]" * 5000 + "\n",
        ["policies/prod.yaml:2:75: nested deeper than 64 levels"],
        id="nested-5000-deep",  # was RecursionError
    ),
    pytest.param(
        "defaults:\n  parallelism: " + "7" * 4301 + "\n",
        [
            'policies/prod.yaml:2:16: defaults.parallelism="'
            + "7" * 200
            + "...(4301 chars): number longer than 100 characters"
        ],
        id="int-of-4301-digits",  # was ValueError
    ),
    pytest.param(
        billion_laughs(),
        [
            "policies/prod.yaml:8: deployments[4]: expands to more than 200000 values (aliases "
            "repeat what they name: an alias bomb?)"
        ],
        id="billion-laughs",  # was MemoryError after 48 s, and 63 MB printed
    ),
    pytest.param(
        "defaults:\n  max_replicas: 10\n  max_replicas: 20\n",
        ["policies/prod.yaml:3: defaults.max_replicas: duplicate key (first at line 2)"],
        id="duplicate-key",  # silently took the last value
    ),
    pytest.param(
        "defaults:\n  min_replicas: 1\n  bogus: 2\n  bogus: 3\n",
        [
            "policies/prod.yaml:4: defaults.bogus: duplicate key (first at line 3)",
            f"policies/prod.yaml:3: defaults.bogus=3: unknown key (known: {SETTINGS_KEYS})",
        ],
        id="duplicate-and-invalid",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    min_replicas: 1\n  - match: a/c\n    parallelism: 0\n",
        [
            "policies/prod.yaml:5: deployments[1].parallelism=0: Input should be greater than "
            "or equal to 1"
        ],
        id="line-of-the-key",
    ),
    pytest.param(
        "deployments:\n  - match: Bad\n    parallelism: 0\n    params: {panik: 1}\n",
        [
            """policies/prod.yaml:2: deployments[0].match="Bad": must be a 'namespace/name' """
            "glob or a list of them (e.g. prod/*)",
            "policies/prod.yaml:3: deployments[0].parallelism=0: Input should be greater than "
            "or equal to 1",
            "policies/prod.yaml:4: deployments[0].params.panik=1: unknown key (known: "
            "budget_spend_s, budget_window_s, burst_memory_s, expected_cold_start_s, "
            "prior_samples, service_s_prior, service_scv_prior)",
        ],
        id="every-problem-of-an-entry",  # stopped at the bad match, then at the settings
    ),
    pytest.param(
        "defaults: {a: 1}\n---\ndefaults: {b: 2}\n",
        ["policies/prod.yaml:2:1: must hold one YAML document (found a second '---')"],
        id="two-documents",
    ),
    pytest.param(
        "defaults:\n  policy: !!python/name:os.system x\n",
        ["policies/prod.yaml:2:11: unsupported tag tag:yaml.org,2002:python/name:os.system"],
        id="python-tag",
    ),
]


@pytest.mark.parametrize(("text", "problems"), HOSTILE)
def test_hostile_file(text: str, problems: list[str]) -> None:
    started = time.perf_counter()
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("policies/prod.yaml", text)])
    assert time.perf_counter() - started < 1.0
    assert [str(p) for p in info.value.problems] == problems


def test_every_problem_of_every_file_at_once() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [
                ("a.yaml", "defaults:\n  max_replicas: 0\n  max_replicas: 1\n"),
                ("b.yaml", "defaults: [\n"),
                ("c.yaml", "deployments:\n  - match: x/y\n    parallelism: 0\n"),
            ]
        )
    assert str(info.value).splitlines() == [
        "a.yaml:3: defaults.max_replicas: duplicate key (first at line 2)",
        "b.yaml:2:1: invalid YAML: while parsing a flow node: expected the node content, but "
        "found '<stream end>'",
        "c.yaml:3: deployments[0].parallelism=0: Input should be greater than or equal to 1",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b"defaults: {}\n" + b"#" * 300_000, ": larger than 262144 bytes", id="big"),
        pytest.param(
            b"defaults:\n  policy: \xff\n", ":2: not UTF-8 text (invalid start byte)", id="not-utf8"
        ),
    ],
)
def test_unreadable_content(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    with pytest.raises(PolicyFileError) as info:
        load_policies([path])
    assert str(info.value) == f"{path}{problem}"


@pytest.mark.parametrize("policy", ["queue", "metric"])
def test_a_moved_param_says_where_it_went(policy: str) -> None:
    text = (
        f"deployments:\n  - match: ns/*\n    policy: {policy}\n"
        "    params:\n      scale_down_stabilization_s: 120\n"
    )
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("p.yaml", text)])
    (problem,) = info.value.problems
    assert (problem.line, problem.path, problem.value) == (
        5,
        "deployments[0].params.scale_down_stabilization_s",
        120,
    )
    assert problem.rule.startswith("moved: the stabilization is the deployment setting")


def test_deployments_the_same_rules_match_share_one_resolution() -> None:
    text = (
        "defaults: {max_replicas: 5}\n"
        "deployments:\n"
        "  - match: prod/*\n    parallelism: 4\n"
        "  - match: prod/big-*\n    max_replicas: 20\n"
    )
    ps = parse_policies([("p.yaml", text)])
    a, b = ps.resolve("prod/a"), ps.resolve("prod/b")
    big = ps.resolve("prod/big-1")
    assert (a.deployment, b.deployment) == ("prod/a", "prod/b")
    assert a.settings is b.settings and a.params is b.params and a.core is b.core
    assert big.settings is not a.settings
    assert (a.core.parallelism, a.core.max_replicas) == (4, 5)
    assert (big.core.parallelism, big.core.max_replicas) == (4, 20)
    # An override (the compare run's) is a resolution of its own.
    hpa = ps.resolve("prod/c", policy_override="hpa")
    assert hpa.settings is not a.settings and hpa.policy.name == "hpa"
    assert ps.resolve("prod/d", policy_override="hpa").settings is hpa.settings
