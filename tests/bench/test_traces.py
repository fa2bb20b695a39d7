"""The evaluation traces (``bench/traces.py``): seeded, at the rates and service times their
shapes promise, and readable by the simulator's trace reader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoscaler.sim.trace import read_trace
from bench import traces
from bench.traces import Requests


def mean_rate(requests: Requests, span_s: float) -> float:
    return len(requests.arrivals) / span_s


@pytest.mark.parametrize(
    ("make", "span_s", "rate", "service_s"),
    [
        # 50 min at ~6 after a 10-min ramp from 1.5: (50 x 6 + 10 x 3.75) / 60.
        (traces.steady_long, 3600.0, (50 * 6.0 + 10 * 3.75) / 60, 6.0),
        (traces.chat_a, 3600.0, 1.5, 5.0),
        (traces.chat_b, 3600.0, 3.0, 5.0),
        # A raised cosine from 0.3 to 8 averages their midpoint.
        (traces.daily_ramp, 7200.0, (0.3 + 8.0) / 2, 3.0),
        # 20 min at 1, 20 at 10, 20 at 1.
        (traces.step, 3600.0, 4.0, 3.0),
    ],
)
def test_shape_has_its_mean_rate_and_service(
    make: Callable[[], Requests], span_s: float, rate: float, service_s: float
) -> None:
    requests = make()
    # The drifts and the Gamma noise move an hour's mean by a few percent, not more.
    assert mean_rate(requests, span_s) == pytest.approx(rate, rel=0.12)
    assert float(requests.service_s().mean()) == pytest.approx(service_s, rel=0.05)
    assert float(requests.arrivals.min()) >= 0.0
    assert float(requests.arrivals.max()) < span_s
    assert np.all(np.diff(requests.arrivals) >= 0)


def test_step_changes_rate_at_twenty_minutes() -> None:
    counts = np.histogram(traces.step().arrivals, bins=[0, 1200, 2400, 3600])[0] / 1200
    assert counts == pytest.approx([1.0, 10.0, 1.0], rel=0.1)


def test_onoff_alternates_silence_and_bursts() -> None:
    requests = traces.onoff()
    per_minute = np.histogram(requests.arrivals, bins=np.arange(0, 3601, 60))[0] / 60
    # Silences are at least 3 minutes, so whole silent minutes exist; bursts are 10-40 req/s.
    assert np.count_nonzero(per_minute == 0) >= 10
    assert 10 * 0.8 <= per_minute.max() <= 40 * 1.2
    assert float(requests.service_s().mean()) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("make", [traces.steady_long, traces.chat_a, traces.onoff])
def test_same_seed_same_trace(make: Callable[[], Requests]) -> None:
    first, second = make(), make()
    assert np.array_equal(first.arrivals, second.arrivals)
    assert np.array_equal(first.generated, second.generated)


def test_other_seed_other_trace() -> None:
    assert not np.array_equal(traces.chat(1.5, 2).arrivals, traces.chat(1.5, 3).arrivals)


def write_servegen(path: Path) -> None:
    # Two days of three windows each: Gamma, Weibull, silent; then day 2 at other rates.
    rows = [
        "0,1.0,1.0,Gamma,1.0,1.0",
        "600,0.5,2.0,Weibull,0.5,1.0",
        "1200,0,0,,0,0",
        "86400,2.0,1.0,Gamma,1.0,0.5",
        "87000,0.25,3.0,Weibull,0.4,2.0",
        "87600,0,0,,0,0",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_servegen_window_counts_are_rate_times_600(tmp_path: Path) -> None:
    path = tmp_path / "chunk-7-trace.csv"
    write_servegen(path)
    day2 = traces.servegen(path, seed=1, day=2)
    counts = np.histogram(day2.arrivals, bins=[0, 600, 1200, 1800])[0]
    assert counts.tolist() == [1200, 150, 0]
    day1 = traces.servegen(path, seed=1, day=1, rate_scale=2.0)
    assert len(day1.arrivals) == 1200 + 600


def test_servegen_is_seeded(tmp_path: Path) -> None:
    path = tmp_path / "chunk-7-trace.csv"
    write_servegen(path)
    a, b = traces.servegen(path, seed=5), traces.servegen(path, seed=5)
    assert np.array_equal(a.arrivals, b.arrivals)
    assert not np.array_equal(a.arrivals, traces.servegen(path, seed=6).arrivals)


def test_written_csv_reads_back_unchanged(tmp_path: Path) -> None:
    requests = traces.chat_a()
    path = tmp_path / "chat_a.csv"
    traces.write_csv(requests, path)
    trace = read_trace(path)
    deployment = trace.deployments[""]
    assert trace.skipped == {}
    assert trace.requests == len(requests.arrivals)
    assert deployment.generated_tokens == requests.generated.tolist()
    # Timestamps are written to the microsecond.
    offsets = np.asarray(deployment.arrivals) - traces.BASE_TS
    assert np.max(np.abs(offsets - requests.arrivals)) < 1e-5
