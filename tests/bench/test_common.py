"""Helpers shared by the benchmark sections."""

from __future__ import annotations

import math
import os

import pytest

from bench.common import maxrss_mib, quantile, rss_mib, splice, table


def test_table_is_markdown() -> None:
    assert table(["a", "b"], [["1", "2"], ["3", "4"]]) == [
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
        "| 3 | 4 |",
    ]


@pytest.mark.parametrize(
    ("existing", "want"),
    [
        (
            "top\n<!-- s -->\nold\n<!-- e -->\nbottom\n",
            "top\n<!-- s -->\nnew\n<!-- e -->\nbottom\n",
        ),
        ("top\n", "top\n\n<!-- s -->\nnew\n<!-- e -->\n"),
    ],
    ids=["replaced", "appended"],
)
def test_splice(existing: str, want: str) -> None:
    assert splice(existing, ["<!-- s -->", "new", "<!-- e -->"], "<!-- s -->", "<!-- e -->") == want


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([3.0, 1.0, 2.0], 0.5, 2.0),
        ([float(i) for i in range(1, 101)], 0.99, 99.0),
        ([float(i) for i in range(1, 101)], 1.0, 100.0),
        ([5.0], 0.0, 5.0),
    ],
)
def test_quantile_is_nearest_rank(values: list[float], q: float, want: float) -> None:
    assert quantile(values, q) == want


def test_quantile_of_nothing_is_nan() -> None:
    assert math.isnan(quantile([], 0.5))


def test_memory_readings_are_positive() -> None:
    assert rss_mib() > 0
    assert rss_mib(os.getpid()) > 0
    assert maxrss_mib() >= rss_mib() * 0.5
