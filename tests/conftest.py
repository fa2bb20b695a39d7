"""Shared fixtures. Real servers start once per test session, only when a test asks for them;
one that does not come up fails the tests that need it with its log, it never skips them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient

from devtools.processes import ServiceError
from devtools.services import start, stop
from tests.kube_helpers import admin_client, create_namespace, delete_namespace


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


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Kubernetes control plane with KWOK's fake nodes (devtools/kube_cluster.py), apart
    from ``services`` so that tests needing only Kafka or Redis do not start it. Yields
    KUBECONFIG (an admin's), KUBE_APISERVER and KUBECTL."""
    base: Path = tmp_path_factory.mktemp("kube")
    try:
        env = start(["kube"], base)
    except ServiceError as exc:
        pytest.fail(f"the Kubernetes control plane did not start: {exc}", pytrace=False)
    try:
        yield env
    finally:
        stop(base)


@pytest.fixture
async def kube_api(kube: dict[str, str]) -> AsyncIterator[ApiClient]:
    """An admin ApiClient on the ``kube`` control plane, for one test."""
    async with admin_client(kube) as api:
        yield api


@pytest.fixture
async def kube_namespace(kube_api: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace for one test, deleted after it."""
    name = await create_namespace(kube_api)
    try:
        yield name
    finally:
        await delete_namespace(kube_api, name)
