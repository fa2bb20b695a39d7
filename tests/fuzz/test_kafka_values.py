"""Fuzz: message values and keys through the real Kafka broker into the Kafka source (issue 9,
items 1 and 10, and "a fuzz suite over Kafka values").

Hypothesis makes batches of values (random bytes, JSON of every shape, valid and nearly valid
events, nesting up to thousands deep, unicode junk, lone surrogates, empty and null values,
keys up to 100 KB); each batch is produced into one partition and consumed by one
long-lived ``KafkaSource`` and engine. Invariants after every batch: the source is alive,
every message is accounted for exactly once (applied with some outcome, unmanaged, or
rejected with a reason, ``poison`` included), the source has read to the end of the
partition; at the end, with every request it started finished, the group's committed offset
is the partition's end. The issue's inputs are replayed first as a fixed corpus.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from autoscaler.adapters.kafka_source import KafkaSource
from autoscaler.core.events import RequestStarted, decode_event
from autoscaler.daemon.engine import Engine
from tests.daemon.kafka_helpers import committed_offsets, create_topic, engine

POLICY = (
    "defaults: {parallelism: 1, target_utilization: 1, max_replicas: 50}\n"
    "deployments: [{match: fuzz/*}]\n"
)
NAMES = [f"fuzz/d{i}" for i in range(4)] + ["other/x", "fuzz/" + "a" * 250]
TYPES = ["request_started", "request_finished", "queue_length", "concurrency", "signal", "x"]
MAX_VALUE_BYTES = 900_000  # under the broker's default 1 MB message limit, key included

CORPUS: list[tuple[bytes | None, bytes | None]] = [
    (b"fuzz/d0", b'{"a":' * 1000 + b"1" + b"}" * 1000),  # item 1: RecursionError in msgspec
    (b"fuzz/d0", b"[" * 1000 + b"]" * 1000),
    (b"fuzz/d0", b'{"type":"signal","junk":' + b"[" * 5000 + b"]" * 5000 + b"}"),
    (b"fuzz/d0", b"[" + b"{}," * 290_000 + b"{}]"),  # item 2's shape, within 1 MB
    (b"fuzz/d0", b'{"type":"queue_length","deployment":"fuzz/d0","ts":1,"value":5}'),  # 1970
    (b"fuzz/d0", b'{"type":"queue_length","deployment":"fuzz/d0","ts":1e10,"value":5}'),
    (
        b"fuzz/d0",
        b'{"type":"request_started","deployment":"fuzz/d0","ts":1,"request_id":"\\ud800"}',
    ),
    (b"fuzz/d0", None),  # a tombstone
    (b"fuzz/d0", b""),
    (None, b"\xff\xfe\x00"),
    (b"k" * 100_000, b"{}"),
]


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=50)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
        ),
        max_leaves=20,
    )


def near_events() -> st.SearchStrategy[dict[str, Any]]:
    now = time.time()
    return st.fixed_dictionaries(
        {
            "type": st.sampled_from(TYPES),
            "deployment": st.sampled_from(NAMES) | st.text(max_size=20),
            "ts": st.sampled_from([now, now - 5, now - 30, now + 3600, 0, -1, 1e11, 1e300])
            | st.floats(now - 100, now + 1),
        },
        optional={
            "request_id": st.sampled_from(["r1", "r2", "r3"]) | st.text(max_size=300),
            "value": st.floats(allow_nan=False) | st.integers(-5, 10**12),
            "replica": st.text(max_size=5),
            "name": st.sampled_from(["rps", "BAD", ""]),
            "extra": json_values(),
        },
    )


def valid_events() -> st.SearchStrategy[dict[str, Any]]:
    """Events of the schema, so that applying and deciding get their share of the fuzz."""
    names = st.sampled_from(NAMES)
    rid = st.sampled_from([f"r{i}" for i in range(8)])
    ts = st.floats(-20, 1).map(lambda d: time.time() + d)
    count = st.floats(0, 1e9) | st.integers(0, 100)
    request = {"deployment": names, "ts": ts, "request_id": rid}
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("request_started"), **request}),
        st.fixed_dictionaries({"type": st.just("request_finished"), **request}),
        st.fixed_dictionaries(
            {"type": st.just("queue_length"), "deployment": names, "ts": ts, "value": count}
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("concurrency"),
                "deployment": names,
                "ts": ts,
                "value": count,
                "replica": st.sampled_from(["p0", "p1"]),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("signal"),
                "deployment": names,
                "ts": ts,
                "name": st.just("rps"),
                "value": count,
            }
        ),
    )


def nested(depth: int, shape: str) -> bytes:
    if shape == "array":
        return b"[" * depth + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # A valid event but for an unknown field nested deep.
    head = b'{"type":"signal","deployment":"fuzz/d0","ts":%d,"name":"x","value":1,"junk":'
    return head % int(time.time()) + b"[" * depth + b"]" * depth + b"}"


def surrogate(escape: str) -> bytes:
    body = {"type": "request_started", "deployment": "fuzz/d1", "ts": time.time()}
    return json.dumps(body).encode()[:-1] + b', "request_id": "' + escape.encode() + b'"}'


values = st.one_of(
    valid_events().map(lambda v: json.dumps(v).encode()),
    valid_events().map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=2000),
    st.none(),
    st.just(b""),
    json_values().map(lambda v: json.dumps(v).encode()),
    near_events().map(lambda v: json.dumps(v).encode()),
    near_events().map(lambda v: json.dumps(v).encode()).map(lambda b: b[: len(b) // 2]),  # cut
    st.builds(nested, st.integers(1, 3000), st.sampled_from(["array", "object", "field"])),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(["\\ud800", "\\udbff", "\\udc00", "\\ud800\\udc00", "ok"]).map(surrogate),
)
keys = (
    st.none()
    | st.sampled_from([n.encode() for n in NAMES])
    | st.binary(max_size=100)
    | st.integers(0, 100_000).map(lambda n: b"k" * n)
)


def accounted(source_engine: Engine) -> float:
    """Messages the engine has accounted for, whatever became of them."""
    metrics = source_engine.metrics
    total = 0.0
    for counter in (metrics.events, metrics.rejected, metrics.unmanaged):
        for family in counter.collect():
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


class Harness:
    def __init__(self, bootstrap: str, policy: Path) -> None:
        self.bootstrap = bootstrap
        self.topic = f"fuzz-{uuid.uuid4().hex[:8]}"
        self.group = f"fuzz-{uuid.uuid4().hex[:8]}"
        self.tp = TopicPartition(self.topic, 0)
        self.engine = engine(policy)
        self.stop = asyncio.Event()
        self.produced = 0
        self.started: set[tuple[str, str]] = set()

    async def start(self) -> None:
        await create_topic(self.bootstrap, self.topic)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, max_request_size=2 * 2**20
        )
        await self.producer.start()
        self.source = KafkaSource(self.engine, self.bootstrap, [self.topic], self.group)
        self.task = asyncio.create_task(self.source.run(self.stop))
        await asyncio.wait_for(self.source.started.wait(), 30)

    async def send(self, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        before = accounted(self.engine)
        for key, value in messages:
            await self.producer.send(self.topic, value, key=key, partition=0)
            try:
                item = decode_event(value or b"")
            except Exception:
                continue
            if isinstance(item, RequestStarted):
                self.started.add((item.deployment, item.request_id))
        await self.producer.flush()
        self.produced += len(messages)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert not self.task.done(), f"the source stopped: {self.task.exception()!r}"
            if self.source._next.get(self.tp) == self.produced:
                break
            await asyncio.sleep(0.02)
        assert self.source._next.get(self.tp) == self.produced, "did not read to the end"
        # Every message accounted exactly once (a poison one as rejected{reason="poison"}).
        assert accounted(self.engine) - before == len(messages)
        # The source's own bookkeeping holds only what the engine tracks (bounded with it).
        owned = set().union(*self.source._owned.values())
        assert owned <= set(self.engine.deployments)
        opened = list(self.source._open.get(self.tp, {}))
        assert all(name in self.engine.deployments for name, _ in opened)

    async def finish(self) -> dict[int, int]:
        # With every request finished the commit may reach the end of the partition.
        finishes = [
            (
                name.encode(),
                json.dumps(
                    {
                        "type": "request_finished",
                        "deployment": name,
                        "ts": time.time(),
                        "request_id": rid,
                    }
                ).encode(),
            )
            for name, rid in sorted(self.started)
        ]
        await self.send(finishes)
        await self.producer.stop()
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        return await committed_offsets(self.bootstrap, self.topic, self.group)


@pytest.fixture
def harness(
    services: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Harness, asyncio.AbstractEventLoop]]:
    (tmp_path / "p.yaml").write_text(POLICY)
    loop = asyncio.new_event_loop()
    kafka = Harness(services["KAFKA_BOOTSTRAP"], tmp_path / "p.yaml")
    loop.run_until_complete(kafka.start())
    try:
        yield kafka, loop
    finally:
        if not kafka.stop.is_set():
            kafka.stop.set()
            loop.run_until_complete(asyncio.wait_for(kafka.task, 30))
        loop.close()


def test_any_kafka_message_is_accounted_for_and_committed_past(
    harness: tuple[Harness, asyncio.AbstractEventLoop],
) -> None:
    kafka, loop = harness
    started_s = time.monotonic()
    loop.run_until_complete(kafka.send(CORPUS))

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        # Bounded in time: no shrinking (each failing try would wait out a timeout); the
        # failing batch is printed as generated.
        phases=[Phase.explicit, Phase.generate],
    )
    @given(st.lists(st.tuples(keys, values), min_size=1, max_size=25))
    def batch(messages: list[tuple[bytes | None, bytes | None]]) -> None:
        fitting = [
            # A record needs a key or a value: a null value gets an empty key then.
            (b"" if k is None and v is None else k, v)
            for k, v in messages
            if len(k or b"") + len(v or b"") < MAX_VALUE_BYTES
        ]
        if fitting:
            loop.run_until_complete(kafka.send(fitting))

    batch()
    committed = loop.run_until_complete(kafka.finish())
    assert committed == {0: kafka.produced}
    elapsed = time.monotonic() - started_s
    assert elapsed < 90, f"the Kafka fuzz took {elapsed:.0f}s"
    counts = {
        f"{s.name}{s.labels}": s.value
        for counter in (kafka.engine.metrics.events, kafka.engine.metrics.rejected)
        for family in counter.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
    print(f"{kafka.produced} messages in {elapsed:.1f}s: {counts}")
