"""The daemon benchmarks (``bench/daemon.py``) end to end at toy sizes: every job runs in its
own process against the session's real Kafka broker and reports figures, and the report
section replaces only its own part of an existing BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from bench import daemon as daemon_bench
from bench.run import QUICK, Run, run_job, write_report

TINY = daemon_bench.DaemonSizes(
    pairs=3000,
    ingest_deployments=50,
    partitions=4,
    ingest_rounds=1,
    reaction_deployments=100,
    reaction_rounds=1,
    reaction_rate=600.0,
    reaction_s=3.0,
    reaction_warmup_s=2.0,
    wide_reaction_deployments=300,
    memory_deployments=200,
    job_timeout_s=240.0,
)


def test_daemon_jobs_measure_and_splice_their_section(
    services: dict[str, str], tmp_path: Path
) -> None:
    run = daemon_bench.measure_daemon(TINY, True, run_job, services["KAFKA_BOOTSTRAP"])

    assert run.error is None
    failed = {name: job.error for name, job in run.jobs.items() if job.result is None}
    assert not failed
    raw = run.jobs["ingest_raw_1"].result
    daemon = run.jobs["ingest_daemon_1"].result
    assert raw is not None and daemon is not None
    assert raw["events"] == daemon["events"] == 6000
    assert daemon["rate_eps"] > 0 and daemon["rejected"] == 0
    reaction = run.jobs["reaction_1"].result
    assert reaction is not None and reaction["produce_to_decision"]["count"] > 0
    wide = run.jobs["wide_reaction"].result
    assert wide is not None and wide["deployments"] == 300 and wide["stall_s_max"] >= 0.0
    memory = run.jobs["memory"].result
    assert memory is not None and memory["deployments"] == 200
    assert memory["rss_mib"] > memory["baseline_rss_mib"] > 0

    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## 1. Kept\n\nfigures from an earlier run\n")
    report = Run(QUICK, True, daemon=run)
    write_report(out, report, {"CPU": "test"}, 1.0)
    first = out.read_text()
    write_report(out, report, {"CPU": "test"}, 1.0)
    text = out.read_text()
    assert text == first  # a second run replaces the section, it does not add another
    assert "figures from an earlier run" in text
    assert text.count(daemon_bench.SECTION_START) == text.count(daemon_bench.SECTION_END) == 1
    assert "### Ingest" in text and "### Reaction" in text and "### Memory" in text
    assert "### Reaction with 300 deployments live" in text and "longest loop stall" in text
