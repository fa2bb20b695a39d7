"""Helpers that several benchmark sections share: markdown tables, the section splice into
BENCHMARKS.md, quantiles and memory readings."""

from __future__ import annotations

import math
import resource
from collections.abc import Sequence
from pathlib import Path


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table, one line per row."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out.extend("| " + " | ".join(r) + " |" for r in rows)
    return out


def met(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def splice(existing: str, section: list[str], start_mark: str, end_mark: str) -> str:
    """``existing`` with the text between the two markers replaced by ``section`` (the markers
    are part of the section), or the section appended when the markers are absent."""
    text = "\n".join(section)
    start, end = existing.find(start_mark), existing.find(end_mark)
    if start != -1 and end != -1:
        return existing[:start] + text + existing[end + len(end_mark) :]
    return existing.rstrip() + "\n\n" + text + "\n"


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation: a p99 is a value some event really had); nan
    for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rss_mib(pid: int | str = "self") -> float:
    """Current resident set size (VmRSS) of a process in MiB; nan when it is not reported."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024.0
