"""The bounded YAML reader: every limit is a line-numbered problem, reached fast, and nothing
but ``PolicyFileError`` leaves it (issue 9, item 5 and the YAML parts of item 11)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest

from autoscaler.config.problems import MAX_SHOWN_CHARS, PolicyFileError, Problem
from autoscaler.config.yaml_safe import YamlLimits, load_yaml, parse_yaml
from autoscaler.daemon.config import load_daemon_config


def billion_laughs(levels: int = 9, fan_out: int = 10) -> str:
    """The classic alias bomb: ``levels`` anchors, each naming the previous one ``fan_out``
    times, so the last expands to fan_out**levels strings from a file of ~1 KB."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * fan_out)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


def block_nested(depth: int) -> str:
    return "".join("  " * level + "k:\n" for level in range(depth)) + "  " * depth + "k: 1\n"


def _deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# (text, the one problem it gives). Each of these crashed, stalled or flooded `validate`.
FATAL = [
    pytest.param(nested(5000), "p.yaml:1:68: nested deeper than 64 levels", id="flow-5000-deep"),
    pytest.param(block_nested(200), "p.yaml:65:129: nested deeper than 64 levels", id="block-deep"),
    pytest.param(
        billion_laughs(),
        "p.yaml:6: l5: expands to more than 200000 values (aliases repeat what they name: an "
        "alias bomb?)",
        id="billion-laughs",
    ),
    pytest.param(
        "a: &a [x]\n" + "b: [" + ", ".join(["*a"] * 101) + "]\n",
        "p.yaml:2:405: more than 100 aliases",
        id="too-many-aliases",
    ),
    pytest.param(
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
        "p.yaml:2:34: nested deeper than 64 levels (via *a)",
        id="deep-through-an-alias",
    ),
    pytest.param(
        "a: &a [1, *a]\n",
        "p.yaml:1:11: alias *a refers to a node that contains it (a cycle)",
        id="cycle",
    ),
    pytest.param(
        "a: *nope\n",
        "p.yaml:1:4: alias *nope names no anchor defined before it",
        id="unknown-alias",
    ),
    pytest.param(
        "defaults: [\n",
        "p.yaml:2:1: invalid YAML: while parsing a flow node: expected the node content, but "
        "found '<stream end>'",
        id="syntax-error-has-file-line-column",
    ),
    pytest.param(
        "defaults:\n  a: 1\n b: 2\n",
        "p.yaml:3:2: invalid YAML: while parsing a block mapping: expected <block end>, but "
        "found '<block mapping start>'",
        id="bad-indent",
    ),
    pytest.param(
        "a: 1\n---\na: 2\n",
        "p.yaml:2:1: must hold one YAML document (found a second '---')",
        id="two-documents",
    ),
    pytest.param(
        "a: !!python/object/apply:os.system [echo]\n",
        "p.yaml:1:4: unsupported tag tag:yaml.org,2002:python/object/apply:os.system",
        id="python-tag",
    ),
    pytest.param(
        "a: !!binary aGk=\n",
        "p.yaml:1:4: unsupported tag tag:yaml.org,2002:binary",
        id="binary-tag",
    ),
    pytest.param("a: !!int abc\n", "p.yaml:1:4: 'abc' is not a valid int", id="bad-explicit-int"),
    pytest.param("? [a, b]\n: 1\n", "p.yaml:1:3: a mapping key must be a scalar", id="list-key"),
    pytest.param("{a: 1}: 2\n", "p.yaml:1:1: a mapping key must be a scalar", id="map-key"),
    pytest.param(
        "a: 1\x00\n",
        "p.yaml: invalid YAML: unacceptable character #x0000: special characters are not "
        "allowed   in , position 4",
        id="nul-byte",
    ),
    pytest.param(
        "a: '" + "x" * (256 * 1024) + "'\n",
        "p.yaml: larger than 262144 bytes (262150)",
        id="too-big",
    ),
]


@pytest.mark.parametrize(("text", "problem"), FATAL)
def test_fatal_problems(text: str, problem: str) -> None:
    started = time.perf_counter()
    with pytest.raises(PolicyFileError) as info:
        parse_yaml(text, "p.yaml")
    elapsed = time.perf_counter() - started
    assert [str(p) for p in info.value.problems] == [problem]
    assert elapsed < 1.0, f"took {elapsed:.2f} s"


# (text, the problems; the rest of the data is still read, so the loader reports them all).
RECOVERABLE = [
    pytest.param(
        "defaults:\n  min_replicas: 1\n  max_replicas: 5\n  min_replicas: 2\n",
        ["p.yaml:4: defaults.min_replicas: duplicate key (first at line 2)"],
        id="duplicate-key",
    ),
    pytest.param(
        "a: 1\nb: {x: 1, x: 2}\na: 3\n",
        [
            "p.yaml:2: b.x: duplicate key (first at line 2)",
            "p.yaml:3: a: duplicate key (first at line 1)",
        ],
        id="every-duplicate-at-once",
    ),
    pytest.param(
        "a: 1\n1: x\n0x1: y\n",
        ["p.yaml:3: 1: duplicate key (first at line 2)"],
        id="duplicate-by-value-not-spelling",
    ),
    pytest.param(
        "parallelism: " + "9" * 4301 + "\n",
        [
            f'p.yaml:1:14: parallelism="{"9" * MAX_SHOWN_CHARS}...(4301 chars): number longer than '
            "100 characters"
        ],
        id="4301-digit-int",
    ),
    pytest.param(
        "x: 0." + "1" * 200 + "\n",
        [
            f'p.yaml:1:4: x="0.{"1" * (MAX_SHOWN_CHARS - 2)}...(202 chars): number longer than 100 '
            "characters"
        ],
        id="long-float",
    ),
    pytest.param(
        "base: &b {x: 1}\nd: {<<: *b, <<: {y: 2}}\n", [], id="merge-keys-are-not-duplicates"
    ),
    pytest.param("a: <<\n", [], id="merge-marker-as-a-value"),
    pytest.param(
        "d: {<<: 1}\n",
        ["p.yaml:1: d: a merge key (<<) takes a mapping or a list of mappings"],
        id="bad-merge",
    ),
]


@pytest.mark.parametrize(("text", "problems"), RECOVERABLE)
def test_recoverable_problems(text: str, problems: list[str]) -> None:
    document = parse_yaml(text, "p.yaml")
    assert [str(p) for p in document.problems] == problems
    if problems:
        with pytest.raises(PolicyFileError):
            load_yaml(text, "p.yaml")


@pytest.mark.parametrize(
    ("text", "data"),
    [
        pytest.param("", None, id="empty"),
        pytest.param("# only a comment\n", None, id="comment"),
        pytest.param(
            "a: [1, -2, 0x1f, 0o17, 1_000, 2.5, 1.0e-3, .inf, null, ~, true, False, '3', \"4\"]\n",
            {
                "a": [
                    1,
                    -2,
                    31,
                    15,
                    1000,
                    2.5,
                    0.001,
                    float("inf"),
                    None,
                    None,
                    True,
                    False,
                    "3",
                    "4",
                ]
            },
            id="core-scalars",
        ),
        # YAML 1.2: no yes/no booleans and no base-60 numbers (22:00 is a time of day).
        pytest.param(
            "a: [yes, no, on, 22:00, 010]\n", {"a": ["yes", "no", "on", "22:00", 10]}, id="yaml-1.2"
        ),
        pytest.param("%YAML 1.1\n---\na: [yes, 010, 1:30]\n", {"a": [True, 8, 90]}, id="yaml-1.1"),
        pytest.param("d: 2026-12-01\n", {"d": datetime.date(2026, 12, 1)}, id="date"),
        pytest.param(
            "base: &b {x: 1, y: 1}\nover: &o {y: 2, z: 2}\nd:\n  <<: [*o, *b]\n  z: 3\n",
            {"base": {"x": 1, "y": 1}, "over": {"y": 2, "z": 2}, "d": {"x": 1, "y": 2, "z": 3}},
            id="merge-keys",
        ),
        pytest.param("a: &a {x: 1}\nb: *a\n", {"a": {"x": 1}, "b": {"x": 1}}, id="alias"),
        pytest.param("'<<': 1\n", {"<<": 1}, id="quoted-merge-is-a-key"),
        pytest.param(nested(63), {"a": _deep_list(63)}, id="64-levels-with-the-top-mapping"),
    ],
)
def test_data(text: str, data: Any) -> None:
    document = parse_yaml(text, "p.yaml")
    assert document.problems == ()
    assert document.data == data


def test_line_of_each_key_path() -> None:
    text = (
        "defaults:\n"  # 1
        "  min_replicas: 1\n"  # 2
        "deployments:\n"  # 3
        "  - match: a/b\n"  # 4
        "  - match: c/d\n"  # 5
        "    params:\n"  # 6
        "      x: [1,\n"  # 7
        "          2]\n"  # 8
    )
    document = parse_yaml(text, "p.yaml")
    assert document.line_of("defaults.min_replicas") == 2
    assert document.line_of("deployments[1]") == 5
    assert document.line_of("deployments[1].params.x") == 7
    assert document.line_of("deployments[1].params.x[1]") == 8
    # A key the file never wrote is placed at its nearest enclosing key.
    assert document.line_of("deployments[1].params.y") == 6
    assert document.line_of("defaults.max_replicas") == 1
    located = document.locate([Problem("p.yaml", "deployments[0].match", "a/b", "r")])
    assert str(located[0]) == 'p.yaml:4: deployments[0].match="a/b": r'


def test_limits_are_settable() -> None:
    tight = YamlLimits(max_bytes=10, max_depth=2, max_aliases=0)
    with pytest.raises(PolicyFileError, match="larger than 10 bytes"):
        load_yaml("a: 12345678901\n", "x", tight)
    with pytest.raises(PolicyFileError, match="nested deeper than 2 levels"):
        load_yaml("[[[]]]", "x", tight)
    with pytest.raises(PolicyFileError, match="more than 0 aliases"):
        load_yaml("[&a 1, *a]", "x", tight)


def test_problem_lines_are_capped() -> None:
    problem = Problem("p.yaml", "k" * 1000, "v" * 10**6, "r" * 5000, 3)
    shown = str(problem)
    assert len(shown) < 1600
    assert "...(1000000 chars)" in shown
    assert "...(5000 chars)" in shown


# --- the daemon config reads through the same reader ------------------------------------


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(
            "tick_s: 1\ndry_run: true\ntick_s: 2\n",
            ["d.yaml:3: tick_s: duplicate key (first at line 1)"],
            id="duplicate-key",
        ),
        pytest.param(
            "dry_run: true\nhttp:\n  port: 70000\n",
            ["d.yaml:3: http.port=70000: Input should be less than or equal to 65535"],
            id="line-of-a-bad-value",
        ),
        pytest.param(
            "http: " + "{a: " * 100 + "\n",
            ["d.yaml:1:259: nested deeper than 64 levels"],
            id="deep",
        ),
        pytest.param(billion_laughs(), None, id="billion-laughs"),
        pytest.param(
            'policies: [5, "a\\0b"]\n',
            ["d.yaml: bad path in config: embedded null byte"],
            id="nul-in-a-path",
        ),
        pytest.param("redis_queues: 5\n", None, id="queues-not-a-list"),
    ],
)
def test_daemon_config(tmp_path: Path, text: str, problems: list[str] | None) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as info:
        load_daemon_config(path)
    shown = [str(p).replace(f"{tmp_path}/", "") for p in info.value.problems]
    if problems is None:
        assert shown, "rejected with problems"
    else:
        assert shown == problems
