"""Exact parsing of CPU, memory and accelerator quantities."""

from __future__ import annotations

import pytest

from autoscaler.config.units import (
    format_cpu,
    format_memory,
    parse_accelerator,
    parse_cpu_millis,
    parse_memory_bytes,
)


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        pytest.param("500m", 500, id="millicores"),
        pytest.param("4", 4000, id="cores"),
        pytest.param(0.5, 500, id="float"),
        pytest.param(2, 2000, id="int"),
        pytest.param("0.25", 250, id="quarter"),
        pytest.param("1.5", 1500, id="one-and-a-half"),
        pytest.param("0.001", 1, id="one-millicore"),
        pytest.param(" 2 ", 2000, id="spaces"),
        pytest.param("1000m", 1000, id="1000m"),
        pytest.param("208", 208000, id="big"),
    ],
)
def test_cpu(text: str | float, millis: int) -> None:
    assert parse_cpu_millis(text) == millis


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("0", "must be positive", id="zero"),
        pytest.param("0m", "must be positive", id="zero-m"),
        pytest.param("-1", "is not a quantity", id="negative"),
        pytest.param("0.0005", "finer than one millicore", id="sub-millicore"),
        pytest.param("1.5m", "finer than one millicore", id="fractional-m"),
        pytest.param("2x", "unknown suffix 'x'", id="bad-suffix"),
        pytest.param("2Gi", "unknown suffix 'Gi'", id="memory-suffix"),
        pytest.param("four", "is not a quantity", id="word"),
        pytest.param("", "is not a quantity", id="empty"),
        pytest.param("1e3", "is not a quantity", id="exponent"),
    ],
)
def test_bad_cpu(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cpu_millis(text)


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        pytest.param("16Gi", 17_179_869_184, id="16Gi"),
        pytest.param("16G", 16_000_000_000, id="16G"),
        pytest.param("512Mi", 536_870_912, id="512Mi"),
        pytest.param("512M", 512_000_000, id="512M"),
        pytest.param("1Ti", 2**40, id="1Ti"),
        pytest.param("1T", 10**12, id="1T"),
        pytest.param("64Ki", 65_536, id="64Ki"),
        pytest.param("64k", 64_000, id="64k"),
        pytest.param("64K", 64_000, id="64K"),
        pytest.param("1.5Gi", 1_610_612_736, id="1.5Gi"),
        pytest.param("0.5Mi", 524_288, id="0.5Mi"),
        pytest.param("1024", 1024, id="plain-bytes"),
        pytest.param(4096, 4096, id="int"),
        pytest.param("17179869185", 17_179_869_185, id="16Gi-plus-one"),
    ],
)
def test_memory(text: str | int, num_bytes: int) -> None:
    assert parse_memory_bytes(text) == num_bytes


def test_memory_is_exact_not_float() -> None:
    # 0.1Gi is 107374182.4 bytes: rejected, not rounded
    with pytest.raises(ValueError, match="not a whole number of bytes"):
        parse_memory_bytes("0.1Gi")
    assert parse_memory_bytes("16Gi") - parse_memory_bytes("16G") == 1_179_869_184
    assert parse_memory_bytes("1024Mi") == parse_memory_bytes("1Gi")
    assert parse_memory_bytes("1000M") == parse_memory_bytes("1G")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("0Gi", "must be positive", id="zero"),
        pytest.param("16GB", "unknown suffix 'GB'", id="GB"),
        pytest.param("16gi", "unknown suffix 'gi'", id="lowercase-gi"),
        pytest.param("16m", "unknown suffix 'm'", id="milli"),
        pytest.param("-1Gi", "is not a quantity", id="negative"),
        pytest.param("Gi", "is not a quantity", id="no-number"),
        pytest.param("0.5", "not a whole number of bytes", id="half-byte"),
    ],
)
def test_bad_memory(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_memory_bytes(text)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("A10G", ("A10G", 1), id="one"),
        pytest.param("H100:2", ("H100", 2), id="two"),
        pytest.param("H100:8", ("H100", 8), id="eight"),
        pytest.param(" T4 ", ("T4", 1), id="spaces"),
        pytest.param("nvidia-l4", ("nvidia-l4", 1), id="dash"),
    ],
)
def test_accelerator(text: str, parsed: tuple[str, int]) -> None:
    assert parse_accelerator(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("H100:0", "count after ':' must be a whole number >= 1", id="zero"),
        pytest.param("H100:-1", "count after ':' must be a whole number >= 1", id="negative"),
        pytest.param("H100:two", "count after ':' must be a whole number >= 1", id="word-count"),
        pytest.param("H100:1.5", "count after ':' must be a whole number >= 1", id="frac"),
        pytest.param(":2", "is not like 'A10G' or 'H100:2'", id="no-name"),
        pytest.param("", "is not like 'A10G' or 'H100:2'", id="empty"),
        pytest.param("H 100", "is not like 'A10G' or 'H100:2'", id="space-inside"),
    ],
)
def test_bad_accelerator(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_accelerator(text)


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(2**34, "16Gi"), (512 * 2**20, "512Mi"), (2**40, "1Ti"), (1536, "1536"), (2048, "2Ki")],
)
def test_format_memory(num_bytes: int, text: str) -> None:
    assert format_memory(num_bytes) == text
    assert parse_memory_bytes(text) == num_bytes


@pytest.mark.parametrize(("millis", "text"), [(4000, "4"), (500, "500m"), (1500, "1500m")])
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu(millis) == text
    assert parse_cpu_millis(text) == millis
