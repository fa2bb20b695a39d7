"""The policy-file loader: merging, resolution, plug-ins and the exact error lines."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler import registry
from autoscaler.config.catalog import load_catalog
from autoscaler.config.loader import PolicyFileError, load_policies, parse_policies
from autoscaler.core.policies.concurrency import ConcurrencyParams
from autoscaler.core.policies.queue import QueueParams
from autoscaler.core.snapshot import Snapshot

SETTINGS_KEYS = (
    "instance, max_replicas, max_request_duration_s, max_scale_down_rate, max_scale_up_rate, "
    "min_replicas, panic_window_s, parallelism, params, policy, scale_down_delay_s, "
    "scale_to_zero_grace_s, scale_up_delay_s, schedule, target_utilization, window_s"
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
        "unknown policy (known: concurrency, hpa, kpa, metric, queue)"
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
    # defaults leave `policy` unset (concurrency); restating it keeps the params
    ps = parse_policies(
        [
            (
                "p.yaml",
                y("""
                defaults:
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
        "deployments[2].min_replicas=12: must be <= max_replicas (10)",
        id="min-over-max",
    ),
    pytest.param(
        "defaults:\n  min_replicas: 3\n  max_replicas: 2\n",
        "defaults.min_replicas=3: must be <= max_replicas (2)",
        id="defaults-min-over-max",
    ),
    pytest.param(
        "defaults:\n  min_replica: 1\n",
        f"defaults.min_replica=1: unknown key (known: {SETTINGS_KEYS})",
        id="unknown-default-key",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    bogus: 1\n",
        f"deployments[0].bogus=1: unknown key (known: {SETTINGS_KEYS})",
        id="unknown-rule-key",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    instance: {gpu: 1}\n",
        "deployments[0].instance.gpu=1: unknown key",
        id="unknown-instance-key",
    ),
    pytest.param("foo: 1\n", "foo=1: unknown key (known: defaults, deployments)", id="top-key"),
    pytest.param(
        "- 1\n", "top level must be a mapping with 'defaults' and/or 'deployments'", id="list"
    ),
    pytest.param(
        "defaults: [1]\n", "defaults=[1]: must be a mapping of settings", id="defaults-list"
    ),
    pytest.param(
        "deployments: {a: 1}\n",
        """deployments={"a":1}: must be a list of entries with 'match'""",
        id="deployments-mapping",
    ),
    pytest.param(
        "deployments:\n  - prod/*\n",
        """deployments[0]="prod/*": must be a mapping with 'match' and settings""",
        id="entry-not-mapping",
    ),
    pytest.param(
        "deployments:\n  - match: Prod/*\n",
        """deployments[0].match="Prod/*": must be a 'namespace/name' glob or a list of them """
        "(e.g. prod/*)",
        id="glob-uppercase",
    ),
    pytest.param(
        "deployments:\n  - match: prod\n",
        """deployments[0].match="prod": must be a 'namespace/name' glob or a list of them """
        "(e.g. prod/*)",
        id="glob-no-namespace",
    ),
    pytest.param(
        "deployments:\n  - match: [a/b, 'x y/z']\n",
        """deployments[0].match=["a/b","x y/z"]: must be a 'namespace/name' glob or a list """
        "of them (e.g. prod/*)",
        id="glob-list-with-space",
    ),
    pytest.param(
        "deployments:\n  - min_replicas: 2\n",
        "deployments[0].match=null: must be a 'namespace/name' glob or a list of them "
        "(e.g. prod/*)",
        id="no-match",
    ),
    pytest.param(
        "defaults:\n  policy: nosuch\n",
        'defaults.policy="nosuch": unknown policy (known: concurrency, hpa, kpa, metric, queue)',
        id="unknown-policy",
    ),
    pytest.param(
        "defaults:\n  params: {panic_threshold: 0.5}\n",
        "defaults.params.panic_threshold=0.5: Input should be greater than 1",
        id="concurrency-panic-threshold",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    policy: queue\n    params: {activation_threshold: -1}\n",
        "deployments[0].params.activation_threshold=-1: Input should be greater than or equal to 0",
        id="queue-activation",
    ),
    pytest.param(
        "defaults:\n  params: {panik: 3}\n",
        "defaults.params.panik=3: unknown key "
        "(known: expected_cold_start_s, panic_threshold, target_per_replica)",
        id="unknown-param",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '25:00', end: '06:00', min_replicas: 2}\n",
        """defaults.schedule[0].start="25:00": must be a time of day HH:MM (00:00 to 24:00)""",
        id="schedule-bad-time",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '22:00', end: '06:00'}\n",
        "defaults.schedule[0].min_replicas=null: a schedule rule needs min_replicas or "
        "max_replicas",
        id="schedule-no-bounds",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '08:00', end: '08:00', min_replicas: 1}\n",
        """defaults.schedule[0].end="08:00": must differ from start""",
        id="schedule-empty",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {start: '22:00', end: '06:00', timezone: Mars/Base, "
        "min_replicas: 1}\n",
        """defaults.schedule[0].timezone="Mars/Base": must be an IANA time zone such as 'UTC' """
        "or 'Europe/Berlin'",
        id="schedule-timezone",
    ),
    pytest.param(
        "defaults:\n  schedule:\n    - {days: [funday], start: '08:00', end: '18:00', "
        "min_replicas: 1}\n",
        """defaults.schedule[0].days[0]="funday": Input should be 'mon', 'tue', 'wed', 'thu', """
        "'fri', 'sat', 'sun', 'weekdays', 'weekends' or 'daily'",
        id="schedule-day",
    ),
    pytest.param(
        "deployments:\n  - match: a/b\n    max_replicas: 5\n    schedule:\n"
        "      - {start: '08:00', end: '18:00', min_replicas: 6}\n",
        "deployments[0].schedule[0].min_replicas=6: must be <= max_replicas (5)",
        id="schedule-min-over-max",
    ),
    pytest.param(
        "defaults:\n  min_replicas: 2\n  schedule:\n"
        "    - {start: '08:00', end: '18:00', max_replicas: 1}\n",
        "defaults.schedule[0].max_replicas=1: must be >= min_replicas (2)",
        id="schedule-max-under-min",
    ),
    pytest.param(
        "defaults:\n  window_s: 5\n",
        "defaults.panic_window_s=6.0: must be <= window_s (5.0)",
        id="panic-window-over-window",
    ),
    pytest.param(
        "defaults:\n  instance: {cpu: 2x}\n",
        """defaults.instance.cpu="2x": cpu '2x' has unknown suffix 'x' (use none or 'm')""",
        id="instance-cpu",
    ),
    pytest.param(
        "defaults:\n  instance: {accelerator: A10G}\n",
        "defaults.instance.use_gpu=false: must be true when accelerator is set (A10G)",
        id="accelerator-without-use-gpu",
    ),
    pytest.param(
        "defaults:\n  window_s: .inf\n",
        "defaults.window_s=Infinity: Input should be less than or equal to 3600",
        id="infinite-window",
    ),
    pytest.param(
        "defaults:\n  max_scale_up_rate: 1\n",
        "defaults.max_scale_up_rate=1: Input should be greater than 1",
        id="rate-1",
    ),
]


BAD += [
    pytest.param(
        "defaults:\n  schedule:\n"
        "    - {start: '08:00', end: '18:00', min_replicas: 3, max_replicas: 2}\n",
        "defaults.schedule[0].min_replicas=3: must be <= max_replicas (2)",
        id="schedule-rule-min-over-its-max",
    ),
    pytest.param(
        "defaults:\n  panic_window_s: .inf\n",
        "defaults.panic_window_s=Infinity: must be a finite number",
        id="infinite-panic-window",
    ),
]


@pytest.mark.parametrize(("text", "line"), BAD)
def test_bad_file(text: str, line: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("policies/prod.yaml", text)])
    assert str(info.value) == f"policies/prod.yaml: {line}"


def test_bad_yaml() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("p.yaml", "defaults: [\n")])
    (problem,) = info.value.problems
    assert str(problem).startswith("p.yaml: invalid YAML: while parsing a flow node")
    assert "\n" not in str(problem)


def test_every_problem_at_once() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [
                ("a.yaml", "defaults:\n  max_replicas: 0\n"),
                ("b.yaml", "deployments:\n  - match: x\n  - match: a/b\n    parallelism: 0\n"),
            ]
        )
    assert str(info.value).splitlines() == [
        "a.yaml: defaults.max_replicas=0: Input should be greater than or equal to 1",
        """b.yaml: deployments[0].match="x": must be a 'namespace/name' glob or a list of them """
        "(e.g. prod/*)",
        "b.yaml: deployments[1].parallelism=0: Input should be greater than or equal to 1",
    ]


def test_defaults_problem_names_the_file_that_set_the_key() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(
            [
                ("a.yaml", "defaults:\n  policy: concurrency\n  max_replicas: 10\n"),
                ("b.yaml", "defaults:\n  min_replicas: 20\n"),
            ]
        )
    assert str(info.value) == "b.yaml: defaults.min_replicas=20: must be <= max_replicas (10)"


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
    from autoscaler.core.policy import PolicyParams, PolicySpec, Recommendation


    class FixedParams(PolicyParams):
        replicas: int = 1


    class Fixed:
        def __init__(self, params):
            self.params = params

        def initial_state(self):
            return None

        def recommend(self, snapshot, state):
            return Recommendation(self.params.replicas, None, "fixed")


    SPEC = PolicySpec(name="fixed", params_model=FixedParams, factory=Fixed)
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
        ]
    )
    resolved = ps.resolve("ml/model")
    assert resolved.policy.name == "fixed"
    assert resolved.params.model_dump() == {"replicas": 4}
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
        parse_policies([("p.yaml", f"defaults:\n  policy: {plugin}:SPEC\n  params: {{x: 1}}\n")])
    assert str(info.value) == "p.yaml: defaults.params.x=1: unknown key (known: replicas)"


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
        parse_policies([("p.yaml", f"defaults:\n  policy: {plugin}:{attr}\n")])
    assert str(info.value) == (
        f'p.yaml: defaults.policy="{plugin}:{attr}": {rule.format(m=plugin)}'
    )


def test_plugin_module_missing() -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("p.yaml", "defaults:\n  policy: no_such_module_xyz:SPEC\n")])
    assert str(info.value) == (
        'p.yaml: defaults.policy="no_such_module_xyz:SPEC": '
        "cannot import 'no_such_module_xyz': No module named 'no_such_module_xyz'"
    )


def test_empty_files_are_valid() -> None:
    ps = parse_policies([("a.yaml", ""), ("b.yaml", "deployments:\n")])
    assert ps.rules == ()
    assert ps.default_settings.max_replicas == 10
    assert ps.resolve("any/thing").policy.name == "concurrency"
