"""The command line, in process (click's CliRunner) and as real processes."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from autoscaler.cli import main
from autoscaler.paths import BUNDLED_TRACE

REPO = Path(__file__).resolve().parent.parent
POLICIES_DIR = REPO / "policies"

POLICY = textwrap.dedent("""
    defaults:
      policy: concurrency
      min_replicas: 1
      max_replicas: 8
      parallelism: 2
      instance: {cpu: "4", memory: 16Gi, accelerator: A10G, use_gpu: true}
    deployments:
      - match: prod/*
        min_replicas: 2
        window_s: 30
        params: {panic_threshold: 3}
    """).lstrip()

SCENARIO = textwrap.dedent("""
    cold_start_s: 10
    slo_wait_s: 2
    initial_replicas: 2
    tick_s: 2
    service_time: {base_s: 0.2, per_context_token_s: 0.0001, per_generated_token_s: 0.02}
    """).lstrip()

COMPARED = ["concurrency", "queue", "hpa", "kpa"]
RESULT_TYPES: dict[str, type] = {
    "policy": str,
    "requests": int,
    "served": int,
    "replica_seconds": float,
    "cost": float,
    "cold_start_waits": int,
    "scale_actions": int,
    "wait_p50_s": float,
    "wait_p95_s": float,
    "wait_p99_s": float,
    "slo_attainment": float,
    "scale_actions_per_hour": float,
    "cost_vs_oracle": float,
    "cost_vs_hindsight": float,
    "cost_vs_best_static": float,
}
REFERENCES = ["oracle", "work_bound", "hindsight", "best_static"]


def _invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    # --log-json keeps the logs machine-readable (and on stderr, never on stdout).
    return CliRunner().invoke(main, ["--log-json", *[str(a) for a in args]], env=env)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_azure(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 300 requests of the bundled Azure trace."""
    lines = BUNDLED_TRACE.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path_factory.mktemp("trace") / "azure_300.csv"
    path.write_text("".join(lines[:301]), encoding="utf-8")
    return path


def _events(path: Path, requests: list[tuple[str, str, float, float]]) -> Path:
    lines = []
    for deployment, rid, start, finish in requests:
        for kind, ts in (("request_started", start), ("request_finished", finish)):
            lines.append(
                json.dumps({"type": kind, "deployment": deployment, "ts": ts, "request_id": rid})
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_contract(stdout: str, policies: list[str], requests: int) -> dict[str, Any]:
    """Exactly one JSON object, of exactly the contract's shape."""
    data = json.loads(stdout)  # fails on anything but one JSON document
    assert stdout.strip().count("\n") == 0  # one line: one object
    assert isinstance(data, dict)
    assert set(data) == {"trace", "slo_target", "winner", "results", "best_static_fleet"}
    assert type(data["slo_target"]) is float
    assert data["winner"] in policies
    assert set(data["trace"]) == {"requests", "span_s"}
    assert type(data["trace"]["requests"]) is int
    assert type(data["trace"]["span_s"]) is float
    assert data["trace"]["requests"] == requests
    assert [r["policy"] for r in data["results"]] == [*policies, *REFERENCES]
    for row in data["results"]:
        assert set(row) == set(RESULT_TYPES)
        for key, kind in RESULT_TYPES.items():
            assert type(row[key]) is kind, (row["policy"], key, row[key])
        assert row["requests"] == row["served"] == requests
        assert 0.0 <= row["slo_attainment"] <= 1.0
        assert 0.0 <= row["wait_p50_s"] <= row["wait_p95_s"] <= row["wait_p99_s"]
        assert row["replica_seconds"] > 0
        assert row["cost"] > 0
    by = {r["policy"]: r for r in data["results"]}
    bound = by["work_bound"]["replica_seconds"]
    assert by["oracle"]["replica_seconds"] >= bound
    for name in policies:
        assert by[name]["replica_seconds"] >= bound * (1 - 1e-9)
    for ref in ("oracle", "work_bound", "hindsight"):
        assert by[ref]["cold_start_waits"] == 0
        assert by[ref]["slo_attainment"] == 1.0
        assert by[ref]["wait_p99_s"] == 0.0
    for ref, key in (
        ("oracle", "cost_vs_oracle"),
        ("hindsight", "cost_vs_hindsight"),
        ("best_static", "cost_vs_best_static"),
    ):
        assert by[ref][key] == 1.0
    fleet = data["best_static_fleet"]
    assert isinstance(fleet, dict) and fleet
    assert all(type(n) is int and n >= 1 for n in fleet.values())
    return data


# ------------------------------------------------------------------------- validate


def test_validate_ok(policy_file: Path) -> None:
    result = _invoke("validate", policy_file)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 1 file(s), 1 deployment rule(s)\n"


def test_validate_the_repository_policies_folder() -> None:
    result = _invoke("validate", POLICIES_DIR)
    assert result.exit_code == 0, result.output
    files = sorted(p for p in POLICIES_DIR.iterdir() if p.suffix in (".yaml", ".yml"))
    assert result.stdout.startswith(f"ok: {len(files)} file(s), ")


def test_validate_reports_every_problem_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""
            defaults:
              max_replicas: 10
            deployments:
              - match: prod/*
                min_replicas: 12
              - match: dev/*
                parallelism: 0
            """),
        encoding="utf-8",
    )
    result = _invoke("validate", bad)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    # file:line of the offending key (issue 9), the file's first line being blank.
    assert f"{bad}:6: deployments[0].min_replicas=12: must be <= max_replicas (10)" in lines
    assert (
        f"{bad}:8: deployments[1].parallelism=0: Input should be greater than or equal to 1"
        in lines
    )


def test_validate_blames_the_file_that_is_wrong(policy_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "z-bad.yaml"
    bad.write_text("deployments:\n  - match: dev/*\n    max_replicas: 0\n", encoding="utf-8")
    result = _invoke("validate", policy_file, bad)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}:3: deployments[0].max_replicas=0: Input should be greater than or equal to 1"
    ]


def test_validate_needs_an_existing_path(tmp_path: Path) -> None:
    result = _invoke("validate", tmp_path / "missing.yaml")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# ------------------------------------------------------------------------- explain


def test_explain_shows_merged_settings_and_the_instance(policy_file: Path) -> None:
    result = _invoke("explain", "prod/llm", "--policies", policy_file)
    assert result.exit_code == 0, result.output
    out = yaml.safe_load(result.stdout)
    assert out["deployment"] == "prod/llm"
    assert out["managed"] is True
    assert out["matched_rules"] == [f"{policy_file}: deployments[0] (match prod/*)"]
    settings = out["settings"]
    assert settings["min_replicas"] == 2  # the rule
    assert settings["window_s"] == 30.0  # the rule
    assert settings["max_replicas"] == 8  # the defaults
    assert settings["parallelism"] == 2  # the defaults
    assert settings["scale_to_zero_grace_s"] == 30.0  # the built-in default
    assert settings["params"] == {
        "panic_threshold": 3.0,
        "target_per_replica": None,
        "expected_cold_start_s": 60.0,
        "tolerance": 0.1,
    }
    assert settings["instance"]["accelerator"] == "A10G"
    assert out["instance_type"]["name"] == "a10g-4x16"
    assert out["instance_type"]["price_per_hour"] == 1.21
    assert "note" not in out


def test_explain_an_unmanaged_deployment_says_so(policy_file: Path) -> None:
    result = _invoke("explain", "dev/llm", "--policies", policy_file)
    assert result.exit_code == 0, result.output
    out = yaml.safe_load(result.stdout)
    assert out["managed"] is False
    assert out["matched_rules"] == []
    assert out["settings"]["min_replicas"] == 1
    assert "no rule matches" in out["note"]


EXPLAIN_MANAGED_CASES = [
    # (daemon.yaml or None, --policies given, deployment, managed_by): `run`'s rule,
    # DaemonConfig.decides_unmatched, seen through `explain`.
    # Issue 9: with no policy files `run` scales every deployment with the embedded policy,
    # and `explain` said "unmanaged".
    pytest.param(None, False, "default/llm", "embedded policy", id="embedded-policy"),
    pytest.param(None, True, "prod/llm", "rules", id="files-matched"),
    pytest.param(None, True, "dev/llm", None, id="files-unmatched"),
    pytest.param("{}", False, "dev/llm", "embedded policy", id="empty-config-embedded"),
    pytest.param("policies: [policy.yaml]", False, "dev/llm", None, id="config-files-unmatched"),
    pytest.param("policies: [policy.yaml]", False, "prod/llm", "rules", id="config-files-matched"),
    pytest.param(
        "manage_unmatched: true", True, "dev/llm", "manage_unmatched", id="manage-unmatched"
    ),
    pytest.param("manage_unmatched: false", False, "default/llm", None, id="embedded-opted-out"),
    # In a cluster the embedded policy scales nothing unless asked (see decides_unmatched).
    pytest.param("kubernetes: {}", False, "default/llm", None, id="cluster-no-files"),
    pytest.param(
        "{kubernetes: {}, manage_unmatched: true}",
        False,
        "default/llm",
        "manage_unmatched",
        id="cluster-manage-unmatched",
    ),
]


@pytest.mark.parametrize(
    ("config", "with_policies", "deployment", "managed_by"), EXPLAIN_MANAGED_CASES
)
def test_explain_says_managed_exactly_when_run_decides(
    policy_file: Path,
    config: str | None,
    with_policies: bool,
    deployment: str,
    managed_by: str | None,
) -> None:
    from autoscaler.daemon.config import load_daemon_config
    from autoscaler.daemon.run import Daemon

    args: list[str | Path] = ["explain", deployment]
    config_path = None
    if config is not None:
        config_path = policy_file.parent / "daemon.yaml"
        config_path.write_text(config + "\n", encoding="utf-8")
        args += ["--config", config_path]
    if with_policies:
        args += ["--policies", policy_file]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    out = yaml.safe_load(result.stdout)
    assert out["managed_by"] == managed_by
    assert out["managed"] is (managed_by is not None)
    assert ("note" in out) is (managed_by != "rules")
    # What `run` with the same --config and --policies would do with it.
    daemon_config = load_daemon_config(config_path)
    if with_policies:
        daemon_config = daemon_config.model_copy(update={"policies": (policy_file,)})
    assert Daemon(daemon_config).engine.manages(deployment) is out["managed"]


@pytest.mark.parametrize(
    ("deployment", "managed"), [("models/llm", True), ("kube-system/coredns", False)]
)
def test_explain_with_the_shipped_daemon_config(deployment: str, managed: bool) -> None:
    result = _invoke("explain", deployment, "--config", REPO / "deploy" / "base" / "daemon.yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["managed"] is managed


# ------------------------------------------------------------------------- schema


def test_schema_prints_the_policy_file_schema() -> None:
    result = _invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert isinstance(schema, dict)
    text = json.dumps(schema)
    assert "min_replicas" in text
    assert "deployments" in text


def test_schema_events_prints_the_event_schema() -> None:
    result = _invoke("schema", "--events")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["title"] == "autoscaler event"
    text = json.dumps(schema)
    for kind in ("request_started", "request_finished", "queue_length", "concurrency"):
        assert kind in text


# ------------------------------------------------------------------------- simulate


def test_simulate_json_contract_on_an_azure_cut(
    small_azure: Path, policy_file: Path, scenario_file: Path, tmp_path: Path
) -> None:
    report = tmp_path / "out.html"
    result = _invoke(
        "simulate",
        small_azure,
        "--policies",
        policy_file,
        "--scenario",
        scenario_file,
        "--compare",
        ",".join(COMPARED),
        "--json",
        "--report",
        report,
    )
    assert result.exit_code == 0, result.stderr
    data = _check_contract(result.stdout, COMPARED, 300)
    rows = BUNDLED_TRACE.read_text(encoding="utf-8").splitlines()[1:301]
    assert data["trace"]["span_s"] > 0
    assert data["trace"]["span_s"] < 600  # 300 requests of a busy trace: minutes at most
    assert len(rows) == 300
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page
    for name in COMPARED:
        assert name in page


def test_simulate_json_on_events_with_an_unmatched_deployment(
    policy_file: Path, scenario_file: Path, tmp_path: Path
) -> None:
    trace = _events(
        tmp_path / "events.jsonl",
        [
            ("prod/llm", "a", 100.0, 101.0),
            ("prod/llm", "b", 100.5, 103.0),
            ("prod/llm", "c", 104.0, 104.5),
            ("staging/llm", "a", 101.0, 102.0),  # no rule matches: the defaults apply
            ("staging/llm", "b", 110.0, 111.5),
        ],
    )
    result = _invoke(
        "simulate",
        trace,
        "--policies",
        policy_file,
        "--scenario",
        scenario_file,
        "--compare",
        "queue, kpa",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    data = _check_contract(result.stdout, ["queue", "kpa"], 5)
    assert data["trace"]["span_s"] == 10.0
    by = {r["policy"]: r for r in data["results"]}
    # Recorded durations: 1 + 2.5 + 0.5 + 1 + 1.5 = 6.5 s of work over 2 slots per replica.
    assert by["work_bound"]["replica_seconds"] == 3.25
    # Every policy starts with the scenario's 2 ready replicas per deployment, enough here.
    assert by["queue"]["wait_p99_s"] == 0.0
    warnings = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    unmatched = [w for w in warnings if "matched by no rule" in w.get("event", "")]
    assert unmatched
    assert unmatched[0]["deployments"] == ["staging/llm"]


def _two_deployment_events(tmp_path: Path) -> Path:
    return _events(
        tmp_path / "events.jsonl",
        [(f"prod/m{k % 2}", str(k), 100.0 + k * 0.25, 100.0 + k * 0.25 + 3.0) for k in range(40)],
    )


def test_simulate_a_policy_named_twice_runs_once(
    policy_file: Path, scenario_file: Path, tmp_path: Path
) -> None:
    trace = _two_deployment_events(tmp_path)
    common: list[str | Path] = ["--policies", policy_file, "--scenario", scenario_file, "--json"]
    once = _invoke("simulate", trace, *common, "--compare", "concurrency")
    twice = _invoke("simulate", trace, *common, "--compare", "concurrency,concurrency")
    assert once.exit_code == 0, once.stderr
    assert twice.exit_code == 0, twice.stderr
    _check_contract(twice.stdout, ["concurrency"], 40)
    assert json.loads(twice.stdout) == json.loads(once.stdout)


def test_simulate_with_worker_processes_matches_one_process(
    policy_file: Path, scenario_file: Path, tmp_path: Path
) -> None:
    trace = _two_deployment_events(tmp_path)
    common: list[str | Path] = ["--policies", policy_file, "--scenario", scenario_file, "--json"]
    common += ["--compare", "concurrency,hpa"]
    serial = _invoke("simulate", trace, *common)
    parallel = _invoke("simulate", trace, *common, "--workers", "2")
    assert serial.exit_code == 0, serial.stderr
    assert parallel.exit_code == 0, parallel.stderr
    _check_contract(parallel.stdout, ["concurrency", "hpa"], 40)
    assert json.loads(parallel.stdout) == json.loads(serial.stdout)


def test_simulate_table_output(small_azure: Path, policy_file: Path, scenario_file: Path) -> None:
    result = _invoke(
        "simulate",
        small_azure,
        "--policies",
        policy_file,
        "--scenario",
        scenario_file,
        env={"COLUMNS": "200"},  # wide enough that rich does not elide the names
    )
    assert result.exit_code == 0, result.stderr
    assert "300 requests" in result.stdout
    for label in ("concurrency", "oracle", "work_bound", "hindsight", "best_static (N="):
        assert label in result.stdout
    for column in ("x oracle", "x hindsight", "x best_static"):
        assert column in result.stdout
    assert "SLO target 99.90%; winner: concurrency" in result.stdout


@pytest.mark.parametrize(
    ("flag", "expected"),
    [([], 0.999), (["--slo-target", "0.9"], 0.9), (["--slo-target", "0.99999"], 0.99999)],
)
def test_simulate_slo_target(
    flag: list[str], expected: float, policy_file: Path, scenario_file: Path, tmp_path: Path
) -> None:
    trace = _two_deployment_events(tmp_path)
    result = _invoke(
        "simulate", trace, "--policies", policy_file, "--scenario", scenario_file, "--json", *flag
    )
    assert result.exit_code == 0, result.stderr
    data = _check_contract(result.stdout, ["concurrency"], 40)
    assert data["slo_target"] == expected
    by = {r["policy"]: r for r in data["results"]}
    # best_static meets the target unless even max_replicas cannot.
    fleet = data["best_static_fleet"]
    assert by["best_static"]["slo_attainment"] >= expected or all(n == 8 for n in fleet.values())


def test_simulate_slo_target_defaults_to_the_strictest_attainment(
    scenario_file: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "slo.yaml"
    policy.write_text(
        POLICY + "  - match: prod/m1\n    slo: {attainment: 0.9999}\n", encoding="utf-8"
    )
    trace = _two_deployment_events(tmp_path)
    result = _invoke("simulate", trace, "--policies", policy, "--scenario", scenario_file, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["slo_target"] == 0.9999
    warnings = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any("slo.attainment differ" in w.get("event", "") for w in warnings)


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1", "high"])
def test_simulate_rejects_a_bad_slo_target(small_azure: Path, value: str) -> None:
    result = _invoke("simulate", small_azure, "--slo-target", value, "--json")
    assert result.exit_code == 2
    assert "--slo-target" in result.stderr


def test_simulate_unknown_compare_policy_fails_clearly(small_azure: Path) -> None:
    result = _invoke("simulate", small_azure, "--compare", "concurrency,nosuchpolicy", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Invalid value for --compare" in result.stderr
    # The known list grows with the built-ins (the slo policy is new): check the form only.
    known = result.stderr.partition("nosuchpolicy: unknown policy (known: ")[2]
    assert known.startswith("concurrency, hpa, kpa, metric, queue")


def test_simulate_bad_scenario_file_fails_with_problem_lines(
    small_azure: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "scenario.yaml"
    bad.write_text("cold_start_s: -5\nslo_wait_s: 2\nsurprise: 1\n", encoding="utf-8")
    result = _invoke("simulate", small_azure, "--scenario", bad, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert f"{bad}: cold_start_s=-5: Input should be greater than or equal to 0" in lines
    assert any(line.startswith(f"{bad}: surprise=1: unknown key") for line in lines)


def test_simulate_invalid_yaml_scenario(small_azure: Path, tmp_path: Path) -> None:
    bad = tmp_path / "scenario.yaml"
    bad.write_text("cold_start_s: [1\n", encoding="utf-8")
    result = _invoke("simulate", small_azure, "--scenario", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{bad}: invalid YAML")


def test_simulate_trace_with_a_bad_header_fails(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,Tokens\n2023-11-16 18:17:01.5,3\n", encoding="utf-8")
    result = _invoke("simulate", trace, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "not an Azure LLM trace" in result.stderr


def test_simulate_trace_without_requests_fails(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("nothing here\n", encoding="utf-8")
    result = _invoke("simulate", trace, "--json")
    assert result.exit_code == 1
    assert f"{trace}: no requests in trace" in result.stderr


# ------------------------------------------------------------------------- real processes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_python_dash_m_autoscaler_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autoscaler", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("validate", "simulate", "explain", "schema"):
        assert command in proc.stdout


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_the_installed_distributions(flag: str) -> None:
    # Issue 9: there was no `autoscaler --version`.
    result = _invoke(flag)
    assert result.exit_code == 0, result.output
    expected = version("autoscaler")
    assert result.stdout == f"autoscaler {expected} (python {platform.python_version()})\n"
    # One source: the package's metadata is pyproject.toml's version.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert expected == pyproject["project"]["version"]


def test_installed_console_script(tmp_path: Path) -> None:
    script = shutil.which("autoscaler", path=str(Path(sys.executable).parent))
    assert script is not None, "the autoscaler console script is not installed"
    help_proc = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=60, env=_env(), check=False
    )
    assert help_proc.returncode == 0, help_proc.stderr
    assert "simulate" in help_proc.stdout
    # Run from elsewhere: the script must not depend on the working directory.
    proc = subprocess.run(
        [script, "validate", str(POLICIES_DIR)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Nothing to apply to: refused before anything starts.
        (["--apply"], "--apply needs a cluster to apply to"),
        (["--namespace", "Not_A_Namespace"], "is not a namespace name"),
    ],
)
def test_run_refuses_what_it_cannot_do(args: list[str], message: str) -> None:
    result = _invoke("run", "--port", "0", *args)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output
