"""Shared fixtures. Real servers start once per test session, only when a test asks for them;
one that does not come up fails the tests that need it with its log, it never skips them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.services import ServiceError, start, stop


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base: Path = tmp_path_factory.mktemp("services")
    try:
        env = start(["redis", "prometheus", "kafka"], base)
    except ServiceError as exc:
        pytest.fail(f"a real server did not start: {exc}", pytrace=False)
    try:
        yield env
    finally:
        stop(base)
