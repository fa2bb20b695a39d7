"""Command line: ``validate``, ``simulate``, ``explain`` and ``schema``.

``simulate``'s flags and ``--json`` output are a contract other tools depend on; see README.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import structlog
import yaml
from pydantic import ValidationError

from autoscaler import __version__
from autoscaler.config.catalog import NoInstanceError, load_catalog
from autoscaler.config.loader import PolicyFileError, PolicySet, load_policies, problems_from
from autoscaler.config.params import params_as_json
from autoscaler.config.registry import UnknownPolicyError, get_policy
from autoscaler.config.schema import policy_file_schema
from autoscaler.core.events import event_json_schema
from autoscaler.logs import configure_logging
from autoscaler.paths import BUNDLED_POLICY, BUNDLED_TRACE

if TYPE_CHECKING:  # imported where used: the daemon's modules load only for its commands
    from autoscaler.daemon.config import DaemonConfig

log = structlog.get_logger("autoscaler")


_MAX_PRINTED_PROBLEMS = 1000
"""Past this many, the rest are counted, not printed (each line is already capped)."""


def _exit_with(exc: PolicyFileError) -> NoReturn:
    """Every problem on its own line on stderr, then exit 1."""
    for problem in exc.problems[:_MAX_PRINTED_PROBLEMS]:
        click.echo(str(problem), err=True)
    if len(exc.problems) > _MAX_PRINTED_PROBLEMS:
        click.echo(f"... and {len(exc.problems) - _MAX_PRINTED_PROBLEMS} more problems", err=True)
    raise SystemExit(1) from exc


def _load_policies_or_exit(
    paths: tuple[Path, ...], allowed_imports: tuple[str, ...] = ()
) -> PolicySet:
    try:
        return load_policies(paths or (BUNDLED_POLICY,), allowed_imports=allowed_imports)
    except PolicyFileError as exc:
        _exit_with(exc)
    except Exception as exc:
        # The loader reports bad files as problems; this is the last guard of a command that
        # ops run on untrusted files: one line, never a traceback.
        reason = f"{type(exc).__name__}: {exc}"[:500]
        click.echo(f"cannot load policies ({reason})", err=True)
        raise SystemExit(1) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="autoscaler",
    message=f"%(prog)s %(version)s (python {platform.python_version()})",
)
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--log-json/--log-console",
    default=None,
    help="log format (default: JSON unless stderr is a terminal)",
)
def main(log_level: str, log_json: bool | None) -> None:
    """Event-driven autoscaler for model-serving deployments."""
    configure_logging(log_level, log_json)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="daemon config YAML whose allowed_policy_imports the files may name",
)
def validate(paths: tuple[Path, ...], config_path: Path | None) -> None:
    """Validate policy files (or folders of them). Exits 1 listing every problem, each as
    `file:line: key.path=value: rule`."""
    allowed: tuple[str, ...] = ()
    if config_path is not None:
        allowed = tuple(_daemon_config_or_exit(config_path).allowed_policy_imports)
    policy_set = _load_policies_or_exit(paths, allowed)
    click.echo(f"ok: {len(policy_set.files)} file(s), {len(policy_set.rules)} deployment rule(s)")


@main.command()
@click.argument("deployment")
@click.option(
    "--policies",
    "policy_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="policy file or folder (repeatable); default: the config's, else the embedded policy",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="daemon config YAML: answer for `run --config` (its policies, manage_unmatched)",
)
@click.option(
    "--catalog", type=click.Path(exists=True, path_type=Path), help="instance catalog YAML"
)
def explain(
    deployment: str,
    policy_paths: tuple[Path, ...],
    config_path: Path | None,
    catalog: Path | None,
) -> None:
    """Show DEPLOYMENT's effective settings (after defaults and overrides) and its instance,
    and whether `autoscaler run` (with the same --config and --policies) would manage it."""
    daemon_config = _daemon_config_or_exit(config_path)
    if policy_paths:
        daemon_config = daemon_config.model_copy(update={"policies": policy_paths})
    policy_set = _load_policies_or_exit(
        daemon_config.policies, daemon_config.allowed_policy_imports
    )
    try:
        resolved = policy_set.resolve(deployment, catalog=load_catalog(catalog))
    except (PolicyFileError, NoInstanceError) as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc
    settings = resolved.settings.model_dump(mode="json")
    settings["params"] = params_as_json(resolved.params)
    # The daemon's own rule (DaemonConfig.decides_unmatched), so that this answer and `run`
    # can never disagree: the embedded policy, with no policy files, manages everything.
    managed_by = _managed_by(bool(resolved.rules), daemon_config)
    out: dict[str, Any] = {
        "deployment": deployment,
        "managed": managed_by is not None,
        "managed_by": managed_by,
        "matched_rules": [f"{r.where} (match {', '.join(r.patterns)})" for r in resolved.rules],
        "settings": settings,
        "instance_type": resolved.instance.model_dump(mode="json") if resolved.instance else None,
    }
    if not resolved.rules:
        out["note"] = _UNMATCHED_NOTES[managed_by]
    click.echo(yaml.safe_dump(out, sort_keys=False).rstrip())


_UNMATCHED_NOTES: dict[str | None, str] = {
    "embedded policy": "no rule matches: with no policy files the daemon runs the embedded "
    "policy for every deployment, this one included (the settings shown)",
    "manage_unmatched": "no rule matches: manage_unmatched is true, so the daemon decides it "
    "with the settings shown",
    None: "no rule matches: the daemon leaves this deployment alone (simulation uses defaults)",
}


def _managed_by(matched: bool, config: DaemonConfig) -> str | None:
    """What makes the daemon decide for a deployment: its rules, the embedded policy (no
    policy files: every deployment), ``manage_unmatched: true``, or nothing (None)."""
    if matched:
        return "rules"
    if not config.decides_unmatched:
        return None
    return "manage_unmatched" if config.manage_unmatched else "embedded policy"


def _daemon_config_or_exit(path: Path | None) -> DaemonConfig:
    from autoscaler.daemon.config import load_daemon_config

    try:
        return load_daemon_config(path)
    except PolicyFileError as exc:
        _exit_with(exc)


@main.command()
@click.option("--events", is_flag=True, help="the event format instead of the policy-file format")
def schema(events: bool) -> None:
    """Print the JSON Schema of policy files (or of events)."""
    click.echo(json.dumps(event_json_schema() if events else policy_file_schema(), indent=2))


@main.command()
@click.argument(
    "trace", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--policies",
    "policy_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="policy file or folder (repeatable); default: the embedded policy",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="scenario YAML; default: the embedded scenario",
)
@click.option(
    "--compare", help="comma-separated policy names to run instead of the file's own choice"
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="write an HTML report here"
)
@click.option(
    "--catalog", type=click.Path(exists=True, path_type=Path), help="instance catalog YAML"
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="processes to spread deployments over",
)
@click.option(
    "--slo-target",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    help="share of requests that must meet the wait (0.999 = 99.9%); "
    "default: the policy files' slo.attainment (the strictest if they differ)",
)
def simulate(
    trace: Path | None,
    policy_paths: tuple[Path, ...],
    scenario: Path | None,
    compare: str | None,
    as_json: bool,
    report: Path | None,
    catalog: Path | None,
    workers: int,
    slo_target: float | None,
) -> None:
    """Replay TRACE (Azure LLM CSV or JSONL events; default: the bundled Azure trace)
    through the decision core on a simulated clock and report cost, waits and cold starts."""
    from autoscaler.sim.runner import default_slo_target
    from autoscaler.sim.runner import simulate as run_simulation
    from autoscaler.sim.scenario import load_scenario
    from autoscaler.sim.trace import read_trace

    policy_set = _load_policies_or_exit(policy_paths)
    names = [n.strip() for n in compare.split(",") if n.strip()] if compare else None
    for name in names or []:
        try:
            get_policy(name)
        except UnknownPolicyError as exc:
            raise click.BadParameter(f"{name}: {exc}", param_hint="--compare") from exc
    try:
        scenario_model = load_scenario(scenario)
    except PolicyFileError as exc:
        _exit_with(exc)
    trace_path = trace or BUNDLED_TRACE
    try:
        loaded = read_trace(trace_path)
    except (ValueError, OSError) as exc:
        click.echo(f"{trace_path}: {exc}", err=True)
        raise SystemExit(1) from exc
    if loaded.requests == 0:
        click.echo(f"{trace_path}: no requests in trace", err=True)
        raise SystemExit(1)
    for reason, count in loaded.skipped.items():
        log.warning("trace lines skipped", reason=reason, count=count, trace=str(trace_path))
    unmatched = [n for n in loaded.deployments if n and not policy_set.manages(n)]
    if unmatched:
        log.warning(
            "deployments matched by no rule use the defaults",
            deployments=unmatched[:10],
            count=len(unmatched),
        )

    # One more pass for the best_static search (its progress counts once per deployment).
    total = loaded.requests * (max(1, len(names or [None])) + 1)
    try:
        catalog_model = load_catalog(catalog)
        if slo_target is None:
            deployments = [n for n, d in loaded.deployments.items() if d.arrivals]
            resolved = {n: policy_set.resolve(n) for n in deployments}
            slo_target, differ = default_slo_target(resolved)
            if differ:
                log.warning(
                    "deployments' slo.attainment differ: scoring against the strictest",
                    slo_target=slo_target,
                )
        run = _with_progress(
            total,
            lambda progress: run_simulation(
                loaded,
                policy_set,
                scenario_model,
                compare=names,
                catalog=catalog_model,
                workers=workers,
                record_series=report is not None,
                progress=progress,
                slo_target=slo_target,
            ),
        )
    except (PolicyFileError, NoInstanceError) as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc

    if report is not None:
        from autoscaler.sim.report import write_report

        write_report(run, report)
        log.info("report written", path=str(report))
    if as_json:
        click.echo(json.dumps(run.as_json()))
    else:
        _print_table(run.as_json())


def _with_progress(total: int, job: Any) -> Any:
    if not sys.stderr.isatty():
        return job(None)
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("simulating", total=total)
        return job(lambda done: bar.advance(task, done))


def _print_table(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from autoscaler.sim.results import reference_label

    trace = data["trace"]
    table = Table(title=f"{trace['requests']} requests over {trace['span_s'] / 60:.1f} min")
    columns = [
        ("policy", "policy"),
        ("served", "served"),
        ("replica_s", "replica_seconds"),
        ("cost $", "cost"),
        ("x oracle", "cost_vs_oracle"),
        ("x hindsight", "cost_vs_hindsight"),
        ("x best_static", "cost_vs_best_static"),
        ("cold waits", "cold_start_waits"),
        ("actions", "scale_actions"),
        ("p50 s", "wait_p50_s"),
        ("p95 s", "wait_p95_s"),
        ("p99 s", "wait_p99_s"),
        ("SLO", "slo_attainment"),
    ]
    for title, _ in columns:
        table.add_column(title, justify="left" if title == "policy" else "right")
    fleet = data.get("best_static_fleet")
    for row in data["results"]:
        cells = []
        for _, key in columns:
            value = row[key]
            if key == "policy":
                cells.append(reference_label(value, fleet))
            elif key == "slo_attainment":
                cells.append(f"{value:.2%}")
            elif key.startswith("cost_vs_"):
                cells.append("-" if value is None else f"{value:.2f}x")
            elif isinstance(value, float):
                cells.append(f"{value:,.2f}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    target = data["slo_target"]
    winner = data["winner"]
    if winner is None:
        table.caption = f"SLO target {target:.2%}: no policy simulated"
    else:
        met = any(
            r["policy"] == winner and r["slo_attainment"] >= target - 1e-12 for r in data["results"]
        )
        why = "cheapest policy meeting it" if met else "none meets it: highest attainment"
        table.caption = f"SLO target {target:.2%}; winner: {winner} ({why})"
    # Off a terminal rich assumes 80 columns and would truncate numbers; never cut them.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="daemon config YAML; default: embedded defaults",
)
@click.option(
    "--policies",
    "policy_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="policy file or folder (repeatable); overrides the config's",
)
@click.option("--host", help="HTTP listen address (default 127.0.0.1)")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="HTTP port (default 8080; 0 = any free)"
)
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="scale workloads of this cluster (the config's `kubernetes:` section otherwise)",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="with --kubeconfig: watch and scale only this namespace (repeatable; default all)",
)
@click.option(
    "--dry-run/--apply",
    default=None,
    help="log decisions instead of applying them (default: the config's `dry_run`, true)",
)
def run(
    config_path: Path | None,
    policy_paths: tuple[Path, ...],
    host: str | None,
    port: int | None,
    kubeconfig: Path | None,
    namespaces: tuple[str, ...],
    dry_run: bool | None,
) -> None:
    """Run the autoscaler daemon: events in over HTTP (POST /events), decisions out.

    With no options it runs on embedded defaults: HTTP ingest on 127.0.0.1:8080, the embedded
    policy for every deployment, in-memory state and a dry-run actuator that logs each decision
    it would apply. /metrics, /healthz and /readyz are served on the same port."""
    from autoscaler.daemon.config import KubernetesConfig, load_daemon_config
    from autoscaler.daemon.run import run_daemon

    try:
        config = load_daemon_config(config_path)
    except PolicyFileError as exc:
        _exit_with(exc)
    http = config.http.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    update: dict[str, Any] = {"http": http}
    if dry_run is not None:
        update["dry_run"] = dry_run
    if policy_paths:
        update["policies"] = tuple(p.resolve() for p in policy_paths)
    if kubeconfig is not None or namespaces:
        base = config.kubernetes or KubernetesConfig()
        kube: dict[str, Any] = {}
        if kubeconfig is not None:
            kube["kubeconfig"] = str(kubeconfig.resolve())
        if namespaces:
            kube["namespaces"] = namespaces
        try:
            update["kubernetes"] = KubernetesConfig.model_validate({**base.model_dump(), **kube})
        except ValidationError as exc:
            _exit_with(PolicyFileError(problems_from(exc, "--namespace", "kubernetes")))
    config = config.model_copy(update=update)
    if not config.dry_run and config.kubernetes is None:
        click.echo(
            "--apply needs a cluster to apply to: --kubeconfig, or `kubernetes:` in --config",
            err=True,
        )
        raise SystemExit(2)
    # Fail fast, with every problem, before starting.
    _load_policies_or_exit(config.policies, config.allowed_policy_imports)
    raise SystemExit(run_daemon(config))
