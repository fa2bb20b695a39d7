"""Decision state in a real Redis: a restarted daemon continues the stabilization it was in,
instead of starting it over; an unreachable Redis never stops a decision. And Redis with a
password (``requirepass``, an ACL user): the daemon authenticates, says clearly when it is
refused, and never shows the password."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog.testing
from engine_helpers import T0, Clock
from redis_server import redis_server

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
from autoscaler.adapters.redis_state import RedisAuth, RedisStateStore, redis_client
from autoscaler.config.loader import PolicyFileError, parse_policies
from autoscaler.core.events import QueueLength, RequestFinished, RequestStarted
from autoscaler.daemon.config import (
    DaemonConfig,
    HttpConfig,
    RedisQueueConfig,
    load_daemon_config,
)
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Saved, StateStore
from autoscaler.daemon.run import Daemon
from autoscaler.daemon.state_codec import decode_state, encode_state

POLICY = """
defaults:
  policy: concurrency
  min_replicas: 1
  max_replicas: 10
  parallelism: 1
  target_utilization: 1.0
  window_s: 10
  panic_window_s: 2
  scale_down_delay_s: 60
deployments:
  - match: prod/*
"""


def refused(eng: Engine) -> float:
    return (
        eng.metrics.registry.get_sample_value(
            "autoscaler_scale_downs_refused_total", {"deployment": "prod/a"}
        )
        or 0.0
    )


def redis_store(url: str) -> RedisStateStore:
    store = RedisStateStore.from_url(url, DaemonMetrics())
    store.namespace = f"test:{uuid.uuid4().hex}:"  # each test its own keys
    return store


def engine(store: StateStore, actuator: DryRunActuator, clock: Clock, text: str = POLICY) -> Engine:
    return Engine(
        parse_policies([("p.yaml", text)]),
        actuator,
        store,
        DaemonMetrics(),
        clock,
        decide_unmatched=False,
        # The Redis store fences its writes with its own leases: the two go together.
        leases=store if isinstance(store, RedisStateStore) else LocalLeases(),
    )


async def burst_then_quiet(eng: Engine, clock: Clock) -> None:
    starts = [RequestStarted(deployment="prod/a", ts=T0, request_id=f"r{i}") for i in range(6)]
    await eng.ingest(starts, T0)
    await eng.decide_pending()
    clock.now = T0 + 1
    await eng.ingest(
        [RequestFinished(deployment="prod/a", ts=clock.now, request_id=f"r{i}") for i in range(6)],
        clock.now,
    )
    for step in range(2, 31, 2):
        clock.now = T0 + step
        await eng.tick()


async def restart_and_run_to(store_b: StateStore, actuator: DryRunActuator, until: float) -> int:
    clock = Clock()
    clock.now = T0 + 30
    restarted = engine(store_b, actuator, clock)
    # The restarted daemon learns of the deployment from its next event.
    await restarted.ingest([QueueLength(deployment="prod/a", ts=clock.now, value=0)], clock.now)
    while clock.now < until:
        clock.now += 2
        await restarted.tick()
    return actuator.replicas["prod/a"]


@pytest.mark.parametrize("persisted", [True, False], ids=["state-in-redis", "state-lost"])
def test_a_restart_continues_the_scale_down_delay(
    services: dict[str, str], persisted: bool
) -> None:
    async def scenario() -> int:
        actuator = DryRunActuator()  # stands for the cluster: it outlives the daemon
        store_a = redis_store(services["REDIS_URL"])
        clock = Clock()
        first = engine(store_a, actuator, clock)
        await burst_then_quiet(first, clock)
        assert actuator.replicas["prod/a"] == 6  # held by the 60 s scale-down delay
        await first.hand_off_all()  # a clean stop lets go of the lease
        await store_a.close()
        store_b: StateStore = InMemoryStateStore()
        if persisted:  # a new process: a new lease owner on the same keys
            store_b = redis_store(services["REDIS_URL"])
            store_b.namespace = store_a.namespace
        replicas = await restart_and_run_to(store_b, actuator, T0 + 80)
        if isinstance(store_b, RedisStateStore):
            await store_b.close()
        return replicas

    replicas = asyncio.run(scenario())
    # The load went at T0+1; recommendations fell to 1 at about T0+12, so the 60 s delay ends
    # at about T0+72. A daemon that lost its history re-seeds it at T0+30 and holds to T0+90.
    assert replicas == (1 if persisted else 6)


@pytest.mark.parametrize("policy", ["concurrency", "queue", "hpa", "kpa"])
def test_every_policy_state_round_trips_through_redis(
    services: dict[str, str], policy: str
) -> None:
    async def scenario() -> None:
        store = redis_store(services["REDIS_URL"])
        clock = Clock()
        eng = engine(
            store,
            DryRunActuator(),
            clock,
            POLICY.replace("match: prod/*", f"match: prod/*\n    policy: {policy}"),
        )
        await burst_then_quiet(eng, clock)
        auto = eng.deployments["prod/a"]
        loaded = await store.load("prod/a", policy, auto.decider.policy.initial_state())
        await store.close()
        assert loaded is not None
        assert loaded.state == auto.state
        assert loaded.replicas == auto.last_decision.replicas if auto.last_decision else False
        assert loaded.fence >= 1  # written under a lease

    asyncio.run(scenario())


def test_a_policy_change_keeps_the_guardrails_history_only() -> None:
    clock = Clock()
    eng = engine(InMemoryStateStore(), DryRunActuator(), clock)
    asyncio.run(burst_then_quiet(eng, clock))
    state = eng.deployments["prod/a"].state
    raw = encode_state("concurrency", Saved(state, 3, 7))
    fresh = object()
    decoded = decode_state(raw, "hpa", fresh)
    assert decoded is not None
    assert decoded.state.guard == state.guard and decoded.state.policy is fresh
    assert (decoded.replicas, decoded.fence) == (3, 7)
    assert decode_state(b"not json", "concurrency", fresh) is None


def test_unreachable_redis_counts_errors_and_decides_anyway() -> None:
    async def scenario() -> None:
        store = RedisStateStore.from_url("redis://127.0.0.1:1/0", DaemonMetrics())
        actuator = DryRunActuator()
        eng = engine(store, actuator, Clock())
        starts = [RequestStarted(deployment="prod/a", ts=T0, request_id=f"r{i}") for i in range(3)]
        await eng.ingest(starts, T0)
        await eng.decide_pending()
        assert actuator.replicas["prod/a"] == 3
        # The lease could not be taken (so state was not loaded) and the save failed.
        assert store.metrics.redis_errors.labels("lease")._value.get() == 1
        assert store.metrics.redis_errors.labels("save")._value.get() == 1
        await store.close()

    asyncio.run(scenario())


def test_unreachable_redis_refuses_scale_down_but_allows_scale_up() -> None:
    async def scenario() -> None:
        store = RedisStateStore.from_url("redis://127.0.0.1:1/0", DaemonMetrics())
        actuator = DryRunActuator()
        clock = Clock()
        eng = engine(
            store,
            actuator,
            clock,
            POLICY.replace("scale_down_delay_s: 60", "scale_down_delay_s: 0"),
        )
        await burst_then_quiet(eng, clock)  # up to 6, then 30 s of no load
        assert not store.healthy
        assert store.metrics.state_store_up._value.get() == 0
        # Without Redis the delays cannot be proven to a successor: no scale-down happened.
        assert actuator.replicas["prod/a"] == 6
        assert refused(eng) >= 1
        last = eng.deployments["prod/a"].last_decision
        assert last is not None and last.recommended < 6
        await store.close()

    asyncio.run(scenario())


def test_with_redis_back_the_scale_down_proceeds(services: dict[str, str]) -> None:
    async def scenario() -> None:
        store = redis_store(services["REDIS_URL"])
        actuator = DryRunActuator()
        clock = Clock()
        eng = engine(
            store,
            actuator,
            clock,
            POLICY.replace("scale_down_delay_s: 60", "scale_down_delay_s: 0"),
        )
        await burst_then_quiet(eng, clock)
        assert store.healthy and store.metrics.state_store_up._value.get() == 1
        assert actuator.replicas["prod/a"] == 1
        assert refused(eng) == 0
        await store.close()

    asyncio.run(scenario())


# -- authentication (a real redis-server with requirepass and an ACL user) --------------------

PASSWORD = f"pw-{uuid.uuid4().hex}"
ALICE_PASSWORD = f"alice-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server that refuses every command until AUTH: the default user's password,
    and an ACL user ``alice`` with a password of her own."""
    work = tmp_path_factory.mktemp("redis-auth")
    acl = ["--user", "alice", "on", f">{ALICE_PASSWORD}", "~*", "&*", "+@all"]
    with redis_server(work, "--requirepass", PASSWORD, *acl) as port:
        yield port


def secret_file(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content + "\n")  # a Secret's file often ends in a newline: stripped
    return path


AUTH_CASES = {
    # case: (how the config authenticates, whether Redis lets it in)
    "no-password": ({}, False),
    "wrong-password-file": ({"file": "not-the-password"}, False),
    "password-file": ({"file": PASSWORD}, True),
    "password-in-url": ({"url_password": PASSWORD}, True),
    "acl-user-and-file": ({"user": "alice", "file": ALICE_PASSWORD}, True),
    "acl-user-wrong-file": ({"user": "alice", "file": PASSWORD}, False),
}


def auth_config(port: int, folder: Path, how: dict[str, str], namespace: str) -> DaemonConfig:
    url = f"redis://127.0.0.1:{port}/0"
    if "url_password" in how:
        url = f"redis://:{how['url_password']}@127.0.0.1:{port}/0"
    return DaemonConfig(
        http=HttpConfig(port=0),
        tick_s=0.05,
        redis_url=url,
        redis_namespace=namespace,
        redis_username=how.get("user"),
        redis_password_file=secret_file(folder, "redis-password", how["file"])
        if "file" in how
        else None,
    )


async def metric_value(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def until_metric(
    http: aiohttp.ClientSession, url: str, name: str, value: float, timeout_s: float = 5
) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := await metric_value(http, url, name)) != value:
        assert time.monotonic() < deadline, f"{name} stayed {seen}, expected {value}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(config: DaemonConfig) -> AsyncIterator[tuple[Daemon, str]]:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    for _ in range(500):
        if daemon.ready or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    assert daemon.ready and daemon.port
    try:
        yield daemon, f"http://127.0.0.1:{daemon.port}"
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, timeout=10)  # a clean stop: no crash, whatever Redis said


def started(rid: str) -> dict[str, object]:
    return {
        "type": "request_started",
        "deployment": "default/llm",
        "ts": time.time(),
        "request_id": rid,
    }


@pytest.mark.parametrize("case", sorted(AUTH_CASES))
def test_redis_requirepass(
    auth_redis: int, tmp_path: Path, capfd: pytest.CaptureFixture[str], case: str
) -> None:
    how, admitted = AUTH_CASES[case]
    namespace = f"auth:{uuid.uuid4().hex}:"
    config = auth_config(auth_redis, tmp_path, how, namespace)

    async def scenario() -> list[dict[str, Any]]:
        with structlog.testing.capture_logs() as logs:
            async with running(config) as (_, url), aiohttp.ClientSession() as http:
                await until_metric(http, url, "autoscaler_state_store_up", 1 if admitted else 0)
                # 12 arriving at once under the embedded `slo` policy (12 req/s at its 2 s
                # service prior, 24 busy slots): 8 replicas. A scale-up is allowed
                # with the store down too; the daemon keeps deciding, it does not crash.
                events = [started(f"r{i}") for i in range(12)]
                async with http.post(f"{url}/events", json=events) as response:
                    assert response.status == 202
                    body = await response.json()
                assert [d["replicas"] for d in body["decisions"]] == [8]
                async with http.get(f"{url}/healthz") as response:
                    assert response.status == 200
                assert await metric_value(http, url, "autoscaler_state_store_up") == (
                    1 if admitted else 0
                )
            if admitted:
                # A second daemon (a restart) with the same settings loads what was saved.
                async with running(config) as (again, url), aiohttp.ClientSession() as http:
                    assert await again.engine.track("default/llm")
                    assert await again.engine.decide("default/llm") is not None
        return logs

    logs = asyncio.run(scenario())
    refused = [e for e in logs if e["event"] == "redis refused authentication"]
    if admitted:
        assert not refused
        loaded = [e for e in logs if e["event"] == "state loaded"]
        assert [(e["deployment"], e["fence"], e["saved_fence"]) for e in loaded] == [
            ("default/llm", 2, 1)
        ]
    else:
        assert refused, "an authentication failure must be named as one"
        assert all("authentication" in e["error"] for e in refused)
        assert not [e for e in logs if e["event"] == "state loaded"]
    # The password is nowhere: not in structured logs, not in anything printed.
    out, err = capfd.readouterr()
    for secret in (PASSWORD, ALICE_PASSWORD):
        assert secret not in repr(logs) and secret not in out and secret not in err


def test_saved_state_under_auth_is_the_decisions(auth_redis: int, tmp_path: Path) -> None:
    """What an authenticated daemon saved is really in that Redis, under its fence."""
    namespace = f"auth:{uuid.uuid4().hex}:"
    config = auth_config(auth_redis, tmp_path, {"file": PASSWORD}, namespace)

    async def scenario() -> None:
        async with running(config) as (daemon, url), aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/events", json=[started(f"r{i}") for i in range(12)]
            ) as response:
                assert response.status == 202
            assert daemon.redis_store is not None
            auth = RedisAuth.from_files(None, config.redis_password_file)
            check = RedisStateStore.from_url(
                f"redis://127.0.0.1:{auth_redis}/0", DaemonMetrics(), namespace=namespace, auth=auth
            )
            saved = await check.load("default/llm", "slo", None)
            await check.close()
            assert saved is not None and (saved.replicas, saved.fence) == (8, 1)

    asyncio.run(scenario())


def test_the_in_memory_store_reports_itself_up() -> None:
    """Issue 9, item 11: without Redis the state store is memory, which is always there;
    the gauge read 0 (its initial value), a false alarm on a healthy daemon."""

    async def scenario() -> None:
        config = DaemonConfig(http=HttpConfig(port=0), tick_s=0.05)
        async with running(config) as (daemon, url), aiohttp.ClientSession() as http:
            assert daemon.redis_store is None
            assert await metric_value(http, url, "autoscaler_state_store_up") == 1

    asyncio.run(scenario())


# -- the settings, validated -------------------------------------------------------------------

CONFIG_CASES = {
    # case: (config keys, files to create, the problem's path, words in its rule or None = valid)
    "file-password": (
        {"redis_url": "redis://h:6379/0", "redis_password_file": "pw"},
        {"pw": "x"},
        None,
        None,
    ),
    "tls-with-ca": (
        {"redis_url": "rediss://h:6380/0", "redis_ssl_ca_file": "ca.pem"},
        {"ca.pem": "-"},
        None,
        None,
    ),
    "unix-socket": ({"redis_url": "unix:///run/redis.sock"}, {}, None, None),
    "missing-password-file": (
        {"redis_url": "redis://h/0", "redis_password_file": "nope"},
        {},
        "redis_password_file",
        "cannot read",
    ),
    "empty-password-file": (
        {"redis_url": "redis://h/0", "redis_password_file": "pw"},
        {"pw": "  "},
        "redis_password_file",
        "empty",
    ),
    "missing-ca-file": (
        {"redis_url": "rediss://h/0", "redis_ssl_ca_file": "nope.pem"},
        {},
        "redis_ssl_ca_file",
        "no such file",
    ),
    "ca-without-tls": (
        {"redis_url": "redis://h/0", "redis_ssl_ca_file": "ca.pem"},
        {"ca.pem": "-"},
        "redis_ssl_ca_file",
        "rediss://",
    ),
    "password-twice": (
        {"redis_url": "redis://:p@h/0", "redis_password_file": "pw"},
        {"pw": "x"},
        "redis_password_file",
        "already",
    ),
    "credentials-without-redis": (
        {"redis_username": "alice"},
        {},
        "redis_username",
        "needs a redis_url",
    ),
    "not-a-redis-url": ({"redis_url": "http://:hunter2@h/0"}, {}, "redis_url", "redis://"),
    "bad-port": ({"redis_url": "redis://:hunter2@h:99999/0"}, {}, "redis_url", "not a URL"),
    "queue-url-not-redis": (
        {"redis_queues": [{"deployment": "a/b", "key": "k", "url": "ftp://h"}]},
        {},
        "redis_queues[0].url",
        "redis://",
    ),
    "queue-own-credentials": (
        {
            "redis_queues": [
                {
                    "deployment": "a/b",
                    "key": "k",
                    "url": "redis://q/0",
                    "username": "u",
                    "password_file": "pw",
                }
            ]
        },
        {"pw": "x"},
        None,
        None,
    ),
    "queue-credentials-without-url": (
        {
            "redis_url": "redis://h/0",
            "redis_queues": [{"deployment": "a/b", "key": "k", "password_file": "pw"}],
        },
        {"pw": "x"},
        "redis_queues[0].password_file",
        "own url",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_redis_auth_settings_are_validated(tmp_path: Path, case: str) -> None:
    keys, files, path, words = CONFIG_CASES[case]
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    config_file = tmp_path / "daemon.yaml"
    config_file.write_text(json.dumps(keys))  # JSON is YAML; file paths relative to it
    if words is None:
        config = load_daemon_config(config_file)
        if config.redis_password_file is not None:
            assert config.redis_password_file.is_absolute()
        return
    with pytest.raises(PolicyFileError) as raised:
        load_daemon_config(config_file)
    problems = raised.value.problems
    assert [p.path for p in problems] == [path]
    assert words in problems[0].rule
    assert "hunter2" not in str(raised.value)  # a URL's password never shows in an error


# -- TLS (a real redis-server on a TLS port, its certificate from a CA of the test's own) ------


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key): a CA, and a certificate for 127.0.0.1 it signed."""
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    )
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    steps = [
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ],
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    ]
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server answering only TLS (with requirepass too); yields (port, CA file)."""
    work = tmp_path_factory.mktemp("redis-tls")
    ca, cert, key = make_ca_and_server_cert(work)
    with redis_server(work, "--requirepass", PASSWORD, tls=(ca, cert, key)) as port:
        yield port, ca


@pytest.mark.parametrize(
    "case, admitted",
    [("rediss-with-ca", True), ("rediss-without-ca", False), ("plain-to-tls-port", False)],
)
def test_redis_over_tls(
    tls_redis: tuple[int, Path], tmp_path: Path, case: str, admitted: bool
) -> None:
    port, ca = tls_redis
    scheme = "redis" if case == "plain-to-tls-port" else "rediss"
    config = DaemonConfig(
        http=HttpConfig(port=0),
        tick_s=0.05,
        redis_url=f"{scheme}://127.0.0.1:{port}/0",
        redis_namespace=f"tls:{uuid.uuid4().hex}:",
        redis_password_file=secret_file(tmp_path, "pw", PASSWORD),
        redis_ssl_ca_file=ca if case == "rediss-with-ca" else None,
    )

    async def scenario() -> None:
        async with running(config) as (daemon, url), aiohttp.ClientSession() as http:
            await until_metric(http, url, "autoscaler_state_store_up", 1 if admitted else 0)
            async with http.post(
                f"{url}/events", json=[started(f"r{i}") for i in range(12)]
            ) as response:
                assert response.status == 202
            if admitted:
                assert daemon.redis_store is not None
                saved = await daemon.redis_store.load("default/llm", "slo", None)
                assert saved is not None and saved.replicas == 8

    asyncio.run(scenario())


# -- queue polling with credentials ------------------------------------------------------------

QUEUE_POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: batch/*}]\n"
)


def test_queue_lengths_from_a_redis_with_a_password(auth_redis: int, tmp_path: Path) -> None:
    """Queues on the state store's Redis use its credentials; a queue with a URL of its own
    uses only what that queue names (the URL's credentials, or its username/password_file),
    and one naming none is refused by the server and counted, never sent the store's."""
    base = f"redis://127.0.0.1:{auth_redis}/0"
    tag = uuid.uuid4().hex[:8]
    (tmp_path / "p.yaml").write_text(QUEUE_POLICY)
    alice_file = secret_file(tmp_path, "alice", ALICE_PASSWORD)
    queues = {
        "batch/shared": (RedisQueueConfig(deployment="batch/shared", key=f"a:{tag}"), 3),
        "batch/in-url": (
            RedisQueueConfig(
                deployment="batch/in-url",
                key=f"b:{tag}",
                url=f"redis://alice:{ALICE_PASSWORD}@127.0.0.1:{auth_redis}/0",
            ),
            4,
        ),
        "batch/own-file": (
            RedisQueueConfig(
                deployment="batch/own-file",
                key=f"c:{tag}",
                url=base,
                username="alice",
                password_file=alice_file,
            ),
            5,
        ),
        "batch/no-credentials": (
            RedisQueueConfig(deployment="batch/no-credentials", key=f"d:{tag}", url=base),
            6,
        ),
    }
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.1,
        redis_url=base,
        redis_namespace=f"q:{tag}:",
        redis_password_file=secret_file(tmp_path, "pw", PASSWORD),
        redis_queues=tuple(queue for queue, _ in queues.values()),
        redis_queue_interval_s=0.1,
    )

    async def scenario() -> None:
        admin = RedisAuth.from_files(None, config.redis_password_file)
        redis = redis_client(base, admin)
        for queue, length in queues.values():
            await redis.rpush(queue.key, *[f"job{i}" for i in range(length)])
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        wanted = {name: length for name, (_, length) in queues.items() if "no-cred" not in name}
        try:
            for _ in range(300):
                if daemon.actuator.replicas == wanted:
                    break
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
            assert daemon.actuator.replicas == wanted
            errors = daemon.engine.metrics.redis_errors.labels("queue_length")._value.get()
            assert errors >= 1  # the queue without credentials, refused each poll
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=30)
            await redis.delete(*(queue.key for queue, _ in queues.values()))
            await redis.aclose()

    asyncio.run(scenario())


def test_a_config_repr_never_shows_a_url_password() -> None:
    config = DaemonConfig(
        redis_url="redis://:hunter2@h:6379/0",
        redis_queues=(
            RedisQueueConfig(deployment="a/b", key="k", url="redis://u:hunter2@q:6379/0"),
        ),
    )
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)


def test_redis_errors_are_counted_each_and_logged_a_few_times() -> None:
    """A store that keeps failing (an outage, a refused password) fails every operation of
    every deployment: all counted, only a few lines logged, with how many were held back."""

    async def scenario() -> list[dict[str, Any]]:
        store = RedisStateStore.from_url("redis://127.0.0.1:1/0", DaemonMetrics())
        with structlog.testing.capture_logs() as logs:
            for i in range(20):
                await store.load(f"prod/d{i}", "concurrency", None)
        assert store.metrics.redis_errors.labels("load")._value.get() == 20
        await store.close()
        return logs

    logs = [e for e in asyncio.run(scenario()) if e["event"] == "redis unavailable"]
    assert len(logs) == 5
    assert all(e["operation"] == "load" for e in logs)


def test_the_slo_standby_floor_survives_the_codec() -> None:
    # The burst memory lives in the policy state; a restart must not forget it.
    from autoscaler.core.decider import DecisionState
    from autoscaler.core.guardrails import GuardState
    from autoscaler.core.policies.slo import SloState
    from autoscaler.daemon.ports import Saved
    from autoscaler.daemon.state_codec import decode_state, encode_state

    state = SloState(standby_rate=12.5, standby_ts=1_700_000_000.0)
    raw = encode_state("slo", Saved(DecisionState(state, GuardState()), 5, 1))
    decoded = decode_state(raw, "slo", SloState())
    assert decoded is not None
    assert decoded.state.policy == state
