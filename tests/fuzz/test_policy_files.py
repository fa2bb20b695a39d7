"""Fuzz: no policy file can crash, stall or flood the loader or ``autoscaler validate``
(issue 9, item 5).

Before: tracebacks on 9 of 230 fuzzed files, three runs over 20 s, 63 MB printed for an
alias bomb. Here random YAML-ish text and random nested data dumped to YAML go through
``parse_policies`` (only a ``PolicySet`` or ``PolicyFileError`` may come out) and through the
``validate`` command (exit 0 or 1, no traceback, bounded output), each case in under a second;
the corpus under ``corpus/policy_files/`` and the generated big inputs are replayed every run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.cli import main
from autoscaler.config.loader import PolicyFileError, PolicySet, parse_policies
from autoscaler.config.models import SETTINGS_KEYS

CORPUS = Path(__file__).parent / "corpus" / "policy_files"
CASE_BUDGET_S = 1.0
MAX_OUTPUT_CHARS = 1_000_000

# The first line each corpus file must be refused with (a substring of it).
EXPECTED = {
    "alias-cycle.yaml": "alias *p refers to a node that contains it (a cycle)",
    "billion-laughs.yaml": "an alias bomb?",
    "duplicate-keys.yaml": ":5: defaults.max_replicas: duplicate key (first at line 3)",
    "import-path-policy.yaml": "import paths must be listed in allowed_policy_imports",
    "mapping-key.yaml": ":2:7: deployments[0]: a mapping key must be a scalar",
    "max-replicas-true.yaml": "defaults.max_replicas=true",
    "max-scale-up-rate-inf.yaml": "defaults.max_scale_up_rate=Infinity",
    "merge-into-scalar.yaml": "a merge key (<<) takes a mapping or a list of mappings",
    "not-utf8.yaml": ":2: not UTF-8 text",
    "nul-byte.yaml": "unacceptable character #x0000",
    "panic-window-tiny.yaml": "defaults.panic_window_s=1e-300",
    "parallelism-401-digits.yaml": ":3:16: defaults.parallelism=",
    "python-tag.yaml": ":2:11: unsupported tag tag:yaml.org,2002:python/object/apply:os.system",
    "syntax-error.yaml": ":4:12: invalid YAML: while parsing a flow sequence",
    "tab-indent.yaml": ":2:1: invalid YAML: while scanning for the next token: found character",
    "two-documents.yaml": ":2:1: must hold one YAML document",
}

# Inputs too big to keep in the repository, from their recipe.
GENERATED: dict[str, tuple[Callable[[], str], str]] = {
    "nested-5000-deep.yaml": (
        lambda: "defaults:\n  params:\n    a: " + "[" * 5000 + "]" * 5000 + "\n",
        ":3:72: nested deeper than 64 levels",
    ),
    "block-nested-500-deep.yaml": (
        lambda: "defaults:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(500)),
        "nested deeper than 64 levels",
    ),
    "int-of-4301-digits.yaml": (
        lambda: "defaults:\n  max_replicas: " + "1" * 4301 + "\n",
        "number longer than 100 characters",
    ),
    "float-of-5000-digits.yaml": (
        lambda: "defaults:\n  window_s: 1." + "0" * 5000 + "\n",
        "number longer than 100 characters",
    ),
    "too-big.yaml": (lambda: "defaults: {}\n" + "# padding\n" * 30_000, "larger than 262144 bytes"),
    "many-problems.yaml": (
        lambda: "deployments:\n" + "".join(f"  - {{match: a/b, x{i}: 1}}\n" for i in range(3000)),
        "deployments[0].x0=1: unknown key",
    ),
    "long-value.yaml": (
        lambda: "defaults:\n  policy: " + "x" * 200_000 + "\n",
        "...(200000 chars)",
    ),
}


def validate(tmp_path: Path, name: str, content: bytes) -> tuple[int, str, float]:
    path = tmp_path / name
    path.write_bytes(content)
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["--log-json", "validate", str(path)])
    elapsed = time.perf_counter() - started
    output = result.output
    assert "Traceback" not in output
    # A SystemExit is how click exits; anything else escaped the command.
    assert result.exception is None or isinstance(result.exception, SystemExit), output[-2000:]
    assert result.exit_code in (0, 1), output[-2000:]
    assert "cannot load policies (" not in output, output[-2000:]  # the last-resort guard
    assert len(output) < MAX_OUTPUT_CHARS
    return result.exit_code, output.replace(str(path), name), elapsed


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name for p in corpus_files()) == sorted(EXPECTED)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_file_is_refused_in_one_line_per_problem(tmp_path: Path, path: Path) -> None:
    code, output, elapsed = validate(tmp_path, path.name, path.read_bytes())
    assert code == 1
    assert EXPECTED[path.name] in output.splitlines()[0], output
    assert elapsed < CASE_BUDGET_S, f"{elapsed:.2f} s"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_big_input_is_refused_fast(tmp_path: Path, name: str) -> None:
    recipe, expected = GENERATED[name]
    code, output, elapsed = validate(tmp_path, name, recipe().encode())
    assert code == 1
    assert expected in output.splitlines()[0], output[:2000]
    # The slowest case reads a whole file at the size limit, on a shared 2-core machine.
    assert elapsed < 2 * CASE_BUDGET_S, f"{elapsed:.2f} s"


def test_many_problems_are_all_reported_but_printing_is_capped(tmp_path: Path) -> None:
    recipe, _ = GENERATED["many-problems.yaml"]
    _, output, _ = validate(tmp_path, "many.yaml", recipe().encode())
    lines = output.splitlines()
    assert len(lines) == 1001
    assert lines[-1] == "... and 2000 more problems"


# --- hypothesis --------------------------------------------------------------------------


def parse(text: str) -> PolicySet | PolicyFileError:
    started = time.perf_counter()
    try:
        outcome: PolicySet | PolicyFileError = parse_policies([("fuzz.yaml", text)])
    except PolicyFileError as exc:
        outcome = exc
        for problem in exc.problems:
            assert len(str(problem)) < 2000
    elapsed = time.perf_counter() - started
    assert elapsed < CASE_BUDGET_S, f"{elapsed:.2f} s for {text[:200]!r}"
    return outcome


TOKENS = [
    *"[]{}:,-?|>&*!%@#'\"\\ \n\t<.=~09eExX_+",
    *("defaults", "deployments", "match", "a/b", "prod/*", "<<", "&a", "*a", "---", "..."),
    *("!!int", "!!str", "!!float", "!!python/name:os.system", "%YAML 1.1", ".inf", ".nan"),
    *("null", "true", "1e400", "0x", "0o", "  ", "\n  ", "\n- ", ": "),
    *sorted(SETTINGS_KEYS),
]
YAML_ISH = st.lists(st.sampled_from(TOKENS), max_size=120).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAML_ISH)
def test_random_yaml_ish_text(text: str) -> None:
    parse(text)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**120), max_value=10**120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e-300, 1e300, math.inf, 2**63, "concurrency", "queue", "a/b"]),
    st.text(max_size=30),
)
KEYS = st.one_of(st.sampled_from(sorted(SETTINGS_KEYS)), st.text(max_size=12), st.integers())
NESTED = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(KEYS, children, max_size=6)
    ),
    max_leaves=40,
)


def policy_file() -> st.SearchStrategy[Any]:
    rule = st.fixed_dictionaries(
        {"match": st.one_of(st.sampled_from(["a/b", "prod/*", ["x/y"]]), SCALARS)},
        optional={k: NESTED for k in ("min_replicas", "max_replicas", "params", "schedule")},
    )
    return st.one_of(
        NESTED,
        st.fixed_dictionaries(
            {},
            optional={
                "defaults": st.one_of(st.dictionaries(KEYS, NESTED, max_size=8), NESTED),
                "deployments": st.one_of(st.lists(rule, max_size=4), NESTED),
            },
        ),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_file())
def test_random_structures_dumped_to_yaml(data: Any) -> None:
    parse(yaml.safe_dump(data, allow_unicode=True))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.one_of(YAML_ISH, policy_file().map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_validate_command_on_random_files(tmp_path: Path, text: str) -> None:
    code, output, elapsed = validate(tmp_path, "fuzz.yaml", text.encode("utf-8", "replace"))
    assert elapsed < CASE_BUDGET_S
    if code == 0:
        assert output.startswith("ok: 1 file(s)")
