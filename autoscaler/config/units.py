"""Exact parsing of Kubernetes-style resource quantities.

CPU is kept in millicores and memory in bytes, both as integers, so that comparisons
against an instance catalog never suffer from float rounding ("16Gi" is exactly 17179869184).
"""

from __future__ import annotations

import re
from fractions import Fraction

_MEMORY_SUFFIXES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_cpu_millis(value: str | int | float) -> int:
    """``"4"`` -> 4000, ``"500m"`` -> 500, ``0.5`` -> 500. Rejects negatives and junk."""
    text = str(value)
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"cpu {text!r} is not a quantity like '4', '0.5' or '500m'")
    number, suffix = Fraction(match.group(1)), match.group(2)
    if suffix == "m":
        millis = number
    elif suffix == "":
        millis = number * 1000
    else:
        raise ValueError(f"cpu {text!r} has unknown suffix {suffix!r} (use none or 'm')")
    if millis.denominator != 1:
        raise ValueError(f"cpu {text!r} is finer than one millicore")
    if millis <= 0:
        raise ValueError(f"cpu {text!r} must be positive")
    return int(millis)


def parse_memory_bytes(value: str | int) -> int:
    """``"16Gi"`` -> 17179869184, ``"512Mi"`` -> 536870912, ``"1G"`` -> 10**9."""
    text = str(value)
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"memory {text!r} is not a quantity like '16Gi' or '512Mi'")
    number, suffix = Fraction(match.group(1)), match.group(2)
    if suffix not in _MEMORY_SUFFIXES:
        known = ", ".join(s for s in _MEMORY_SUFFIXES if s)
        raise ValueError(f"memory {text!r} has unknown suffix {suffix!r} (known: {known})")
    total = number * _MEMORY_SUFFIXES[suffix]
    if total.denominator != 1:
        raise ValueError(f"memory {text!r} is not a whole number of bytes")
    if total <= 0:
        raise ValueError(f"memory {text!r} must be positive")
    return int(total)


def parse_accelerator(value: str) -> tuple[str, int]:
    """``"A10G"`` -> ("A10G", 1), ``"H100:2"`` -> ("H100", 2)."""
    name, _, count_text = value.partition(":")
    name = name.strip()
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"accelerator {value!r} is not like 'A10G' or 'H100:2'")
    if not count_text:
        return name, 1
    if not count_text.isdigit() or int(count_text) < 1:
        raise ValueError(f"accelerator {value!r}: count after ':' must be a whole number >= 1")
    return name, int(count_text)


def format_memory(num_bytes: int) -> str:
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        unit = _MEMORY_SUFFIXES[suffix]
        if num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def format_cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
