"""Trace readers: the Azure LLM CSV, recorded JSONL events, and sniffing which is which."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autoscaler.paths import BUNDLED_TRACE
from autoscaler.sim.trace import UNNAMED, read_azure_csv, read_event_jsonl, read_trace

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _unix(second: int, fraction: float = 0.0) -> float:
    # 2023-11-16 18:17:SS UTC, plus the fraction, the way the reader adds it.
    base = datetime(2023, 11, 16, 18, 17, second, tzinfo=UTC).timestamp()
    return base + fraction


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------- Azure CSV


def test_azure_seven_digit_fractions_are_read_exactly(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        HEADER
        + "2023-11-16 18:17:03.9799600,4808,10\n"
        + "2023-11-16 18:17:04.0319600,3180,8\n"
        + "2023-11-16 18:17:05.0000001,1,1\n"
        + "2023-11-16 18:17:06,7,9\n",  # no fraction at all
    )
    trace = read_azure_csv(path)
    assert list(trace.deployments) == [UNNAMED]
    dep = trace.deployments[UNNAMED]
    assert dep.arrivals == [
        _unix(3, 0.97996),
        _unix(4, 0.03196),
        _unix(5, 0.0000001),
        _unix(6),
    ]
    assert dep.arrivals[0] == 1700158623.97996
    # 7 digits are more than strptime's %f takes; the gap keeps its sub-microsecond part.
    assert dep.arrivals[1] - dep.arrivals[0] == pytest.approx(0.052, abs=1e-6)
    assert dep.arrivals[2] - _unix(5) == pytest.approx(1e-7, abs=1e-7)
    assert dep.context_tokens == [4808, 3180, 1, 7]
    assert dep.generated_tokens == [10, 8, 1, 9]
    assert dep.durations == [None] * 4
    assert trace.skipped == {}
    assert trace.requests == 4
    assert trace.start == dep.arrivals[0]
    assert trace.span_s == dep.arrivals[-1] - dep.arrivals[0]
    assert trace.source == str(path)


def test_azure_rows_are_sorted_with_their_tokens(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        HEADER
        + "2023-11-16 18:17:09.5,3,30\n"
        + "2023-11-16 18:17:01.25,1,10\n"
        + "2023-11-16 18:17:05.0,2,20\n",
    )
    dep = read_azure_csv(path).deployments[UNNAMED]
    assert dep.arrivals == [_unix(1, 0.25), _unix(5), _unix(9, 0.5)]
    assert dep.context_tokens == [1, 2, 3]
    assert dep.generated_tokens == [10, 20, 30]


@pytest.mark.parametrize(
    "row",
    [
        "2023-11-16 18:17:03.5,12",  # missing a column
        "2023-11-16 18:17:03.5,twelve,4",  # token count not a number
        "2023-11-16 18:17:03.5,12,4.5",  # not an integer
        "2023-11-16 18:17:03.5,-1,4",  # negative
        "2023-11-16 18:17:03.5,12,-4",
        "16/11/2023 18:17:03,12,4",  # wrong date format
        "2023-11-16 25:17:03.5,12,4",  # no such hour
        "2023-11-16 18:17:03.abc,12,4",
        "2023-11-16 18:17:03.5e3,12,4",  # would have been +500 s
        "2023-11-16 18:17:03.1_0,12,4",
        "",  # blank line: csv gives an empty row
    ],
)
def test_azure_malformed_rows_are_counted_and_skipped(tmp_path: Path, row: str) -> None:
    path = _write(
        tmp_path / "t.csv",
        HEADER + "2023-11-16 18:17:01.0,1,1\n" + row + "\n" + "2023-11-16 18:17:02.0,2,2\n",
    )
    trace = read_azure_csv(path)
    assert trace.deployments[UNNAMED].arrivals == [_unix(1), _unix(2)]
    assert trace.deployments[UNNAMED].context_tokens == [1, 2]
    assert trace.skipped == {"malformed": 1}


def test_azure_malformed_rows_add_up(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        HEADER + "x,1,1\n" + "2023-11-16 18:17:01.0,1,1\n" + "y,2,2\n" + "z\n",
    )
    trace = read_azure_csv(path)
    assert trace.requests == 1
    assert trace.skipped == {"malformed": 3}


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty file
        "Timestamp,ContextTokens,GeneratedTokens\n2023-11-16 18:17:01.0,1,1\n",
        "TIMESTAMP,GeneratedTokens,ContextTokens\n2023-11-16 18:17:01.0,1,1\n",
        "TIMESTAMP,ContextTokens\n2023-11-16 18:17:01.0,1\n",
        "2023-11-16 18:17:01.0,1,1\n",  # no header at all
    ],
)
def test_azure_header_is_checked(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path / "t.csv", text)
    with pytest.raises(ValueError, match="not an Azure LLM trace") as info:
        read_azure_csv(path)
    assert str(path) in str(info.value)
    assert "TIMESTAMP,ContextTokens,GeneratedTokens" in str(info.value)


def test_azure_header_with_spaces_and_extra_columns_is_accepted(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        "TIMESTAMP, ContextTokens ,GeneratedTokens,Extra\n2023-11-16 18:17:01.5,3,4,x\n",
    )
    dep = read_azure_csv(path).deployments[UNNAMED]
    assert dep.arrivals == [_unix(1, 0.5)]
    assert (dep.context_tokens, dep.generated_tokens) == ([3], [4])


def test_bundled_azure_trace_reads_cleanly() -> None:
    trace = read_azure_csv(BUNDLED_TRACE)
    dep = trace.deployments[UNNAMED]
    rows = BUNDLED_TRACE.read_text(encoding="utf-8").splitlines()[1:]
    assert trace.requests == len(rows)
    assert trace.skipped == {}
    assert dep.arrivals == sorted(dep.arrivals)
    assert dep.arrivals[0] == _unix(3, 0.97996)


# ------------------------------------------------------------------------- JSONL events


def _ev(kind: str, deployment: str, ts: float, **fields: object) -> str:
    return json.dumps({"type": kind, "deployment": deployment, "ts": ts, **fields})


def _start(deployment: str, ts: float, rid: str) -> str:
    return _ev("request_started", deployment, ts, request_id=rid)


def _finish(deployment: str, ts: float, rid: str) -> str:
    return _ev("request_finished", deployment, ts, request_id=rid)


def _jsonl(path: Path, lines: list[str]) -> Path:
    return _write(path, "\n".join(lines) + "\n")


def test_jsonl_durations_come_from_start_finish_pairs(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "e.jsonl",
        [
            _start("prod/llm", 100.0, "a"),
            _start("prod/llm", 101.5, "b"),
            _finish("prod/llm", 102.25, "b"),
            _finish("prod/llm", 104.0, "a"),
            # A finish may come before its start in the file; arrivals are sorted.
            _finish("prod/llm", 99.5, "c"),
            _start("prod/llm", 99.0, "c"),
        ],
    )
    trace = read_event_jsonl(path)
    dep = trace.deployments["prod/llm"]
    assert dep.arrivals == [99.0, 100.0, 101.5]
    assert dep.durations == [0.5, 4.0, 0.75]
    assert dep.context_tokens == [0, 0, 0]
    assert dep.generated_tokens == [0, 0, 0]
    assert trace.skipped == {}
    assert trace.source == str(path)


def test_jsonl_unfinished_requests_are_counted_but_still_arrive(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "e.jsonl",
        [
            _start("prod/llm", 10.0, "done"),
            _finish("prod/llm", 12.0, "done"),
            _start("prod/llm", 11.0, "open"),  # never finished
            _start("prod/llm", 13.0, "backwards"),
            _finish("prod/llm", 12.5, "backwards"),  # finished before it started
            _finish("prod/llm", 20.0, "ghost"),  # finished, never started
        ],
    )
    trace = read_event_jsonl(path)
    dep = trace.deployments["prod/llm"]
    assert dep.arrivals == [10.0, 11.0, 13.0]
    assert dep.durations == [2.0, None, None]  # the scenario's model fills these in
    assert trace.skipped == {"unfinished": 2, "finish_without_start": 1}


def test_jsonl_duplicates_are_counted_and_the_first_start_and_finish_win(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "e.jsonl",
        [
            _start("prod/llm", 1.0, "r"),
            _start("prod/llm", 1.0, "r"),
            _start("prod/llm", 3.0, "r"),
            _finish("prod/llm", 2.0, "r"),
            _finish("prod/llm", 9.0, "r"),
            # The same id on another deployment is another request.
            _start("prod/other", 1.0, "r"),
            _finish("prod/other", 1.25, "r"),
        ],
    )
    trace = read_event_jsonl(path)
    assert trace.deployments["prod/llm"].arrivals == [1.0]
    assert trace.deployments["prod/llm"].durations == [1.0]
    assert trace.deployments["prod/other"].durations == [0.25]
    assert trace.skipped == {"duplicate": 2}


def test_jsonl_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "e.jsonl",
        [
            "{not json",
            _start("prod/llm", 1.0, "a"),
            "",  # blank lines are not counted at all
            "   ",
            '{"type": "request_started", "deployment": "prod/llm", "ts": 2.0}',  # no id
            _start("Prod/LLM", 2.0, "b"),  # deployment name not namespace/name
            _start("prod/llm", -5.0, "c"),  # negative time
            _ev("no_such_event", "prod/llm", 3.0),
            "[1, 2, 3]",
            _finish("prod/llm", 4.0, "a"),
            "\x00\x01",
        ],
    )
    trace = read_event_jsonl(path)
    assert list(trace.deployments) == ["prod/llm"]
    assert trace.deployments["prod/llm"].arrivals == [1.0]
    assert trace.deployments["prod/llm"].durations == [3.0]
    assert trace.skipped == {"invalid_json": 2, "invalid_event": 5}


def test_jsonl_queue_and_concurrency_events_are_not_replayed(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "e.jsonl",
        [
            _ev("queue_length", "prod/llm", 1.0, value=4),
            _start("prod/llm", 1.0, "a"),
            _ev("concurrency", "prod/llm", 1.5, value=1, replica="pod-1"),
            _ev("concurrency", "prod/llm", 2.0, value=0, replica="pod-1"),
            _finish("prod/llm", 2.0, "a"),
        ],
    )
    trace = read_event_jsonl(path)
    assert trace.requests == 1
    assert trace.skipped == {"not_replayed": 3}


def test_jsonl_multiple_deployments(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "e.jsonl",
        [
            _start("zeta/b", 5.0, "1"),
            _start("alpha/a", 7.0, "1"),
            _start("zeta/b", 3.0, "2"),
            _finish("zeta/b", 6.0, "1"),
            _finish("alpha/a", 8.0, "1"),
            _finish("zeta/b", 3.5, "2"),
        ],
    )
    trace = read_event_jsonl(path)
    assert list(trace.deployments) == ["alpha/a", "zeta/b"]  # in name order
    assert trace.deployments["alpha/a"].arrivals == [7.0]
    assert trace.deployments["alpha/a"].durations == [1.0]
    assert trace.deployments["zeta/b"].arrivals == [3.0, 5.0]
    assert trace.deployments["zeta/b"].durations == [0.5, 1.0]
    assert trace.requests == 3
    assert trace.start == 3.0
    assert trace.span_s == 4.0


def test_jsonl_without_requests_is_an_empty_trace(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "e.jsonl", [_ev("queue_length", "prod/llm", 1.0, value=0)])
    trace = read_event_jsonl(path)
    assert trace.deployments == {}
    assert trace.requests == 0
    assert trace.span_s == 0.0


# ------------------------------------------------------------------------- sniffing


def test_read_trace_sniffs_the_content_not_the_name(tmp_path: Path) -> None:
    csv_named_jsonl = _write(tmp_path / "looks.jsonl", HEADER + "2023-11-16 18:17:01.5,3,4\n")
    jsonl_named_csv = _jsonl(
        tmp_path / "looks.csv", [_start("prod/llm", 1.0, "a"), _finish("prod/llm", 2.0, "a")]
    )
    azure = read_trace(csv_named_jsonl)
    assert list(azure.deployments) == [UNNAMED]
    assert azure.deployments[UNNAMED].arrivals == [_unix(1, 0.5)]
    assert azure.deployments[UNNAMED].durations == [None]
    events = read_trace(jsonl_named_csv)
    assert list(events.deployments) == ["prod/llm"]
    assert events.deployments["prod/llm"].durations == [1.0]


def test_read_trace_of_a_csv_with_a_bad_header_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "TIMESTAMP,Tokens\n2023-11-16 18:17:01.5,3\n")
    with pytest.raises(ValueError, match="not an Azure LLM trace"):
        read_trace(path)


def test_read_trace_of_something_else_reads_as_events_that_are_all_rejected(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "t.txt", "hello\nworld\n")
    trace = read_trace(path)
    assert trace.requests == 0
    assert trace.skipped == {"invalid_json": 2}
