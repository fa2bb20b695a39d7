"""What a bad policy file, daemon config or annotation is reported as: one ``Problem`` per
finding, printed ``file:line: key.path=value: rule``, and the error that carries them all.

These live apart from the loader so the YAML reader (``yaml_safe``) can raise them too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

MAX_SHOWN_CHARS: Final = 200
"""A value or key path is cut to this many characters when printed: one short line per
problem, however big the offending value (an alias bomb once printed 63 MB)."""
MAX_RULE_CHARS: Final = 1000
"""Rules are ours (a list of known keys can be long), but are capped as well."""


class _NoValue:
    """The value of a problem that is about a key, not its value (a duplicate key)."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: str
    value: Any
    rule: str
    line: int | None = None
    """1-based line in ``file`` of the key (or item) the problem is about, where known."""
    column: int | None = None
    """1-based column; set for YAML syntax errors, where the exact spot matters."""

    @property
    def where(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def __str__(self) -> str:
        rule = _cut(self.rule, MAX_RULE_CHARS)
        if not self.path:
            return f"{self.where}: {rule}"
        if self.value is NO_VALUE:
            return f"{self.where}: {_cut(self.path)}: {rule}"
        return f"{self.where}: {_cut(self.path)}={_show(self.value)}: {rule}"


def _cut(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} chars)"


def _show(value: Any) -> str:
    if isinstance(value, str):
        if len(value) <= MAX_SHOWN_CHARS:
            return json.dumps(value)
        # Cut before quoting: json.dumps of a 1 MiB string is wasted work.
        return f"{json.dumps(value[:MAX_SHOWN_CHARS])[:-1]}...({len(value)} chars)"
    try:
        text = json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return _cut(text)


class PolicyFileError(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
