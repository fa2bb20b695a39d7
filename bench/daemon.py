"""Daemon benchmarks: Kafka ingest rate beside aiokafka's raw rate, reaction latency with 1,000
deployments live, resident memory with 10,000 deployments tracked.

Each measured job runs in a child process of ``bench.run`` (``--job daemon_*``), so resident
memory is per job. The parent starts a real Kafka broker with ``devtools.services`` (the same
launcher the tests use) in a folder of its own, passes its address to the jobs, and stops it
afterwards. Nothing is faked: events go through the real broker, aiokafka, the daemon's
``KafkaSource``, ``Engine``, core, dry-run actuator and in-memory state store.

    python -m bench.run --only daemon --out BENCHMARKS.md   # only these jobs, spliced in
    python -m bench.daemon profile --pairs 200000           # cProfile of the daemon's ingest
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.common import maxrss_mib, met, quantile, rss_mib, table
from bench.common import splice as splice_section

if TYPE_CHECKING:
    from autoscaler.daemon.ports import IngestResult

JobResult = dict[str, Any]

# Issue 11's targets for ingest, memory and reaction with 10,000 live deployments (the
# 1,000-deployment rounds keep the earlier reaction target).
INGEST_TARGET_EPS = 150_000.0
INGEST_RATIO_TARGET = 0.50
REACTION_P99_TARGET_S = 0.250
WIDE_REACTION_P99_TARGET_S = 0.100  # issue 11: 10,000 live deployments
STALL_TARGET_S = 0.050  # issue 11: no loop stall longer than this with 10,000 live
STALL_PROBE_S = 0.005
MEMORY_TARGET_MB = 150.0  # decimal megabytes, as the target is stated (10,000 deployments)
PRODUCE_BATCH_BYTES = 512 * 1024
SECTION_START = "<!-- bench:daemon:start -->"
SECTION_END = "<!-- bench:daemon:end -->"


# -- helpers ---------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": float(len(ordered)),
        "p50": quantile(ordered, 0.50),
        "p90": quantile(ordered, 0.90),
        "p99": quantile(ordered, 0.99),
        "p999": quantile(ordered, 0.999),
        "max": ordered[-1] if ordered else float("nan"),
    }


def _deployment_names(count: int) -> list[str]:
    # Twenty namespaces, Kubernetes-style names: the tracker hashes these on every event.
    return [f"team-{i % 20:02d}/model-{i:05d}" for i in range(count)]


def _counter_total(counter: Any) -> dict[str, float]:
    """A labelled prometheus counter's ``_total`` samples, keyed by the first label value."""
    totals: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = next(iter(sample.labels.values()), "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


# -- the ingest workload ---------------------------------------------------------------------


def ingest_workload(pairs: int, deployments: int, seed: int) -> Iterator[tuple[str, str, bool]]:
    """``(deployment, request_id, is_start)`` for ``pairs`` requests over ``deployments``.

    Each deployment's rate is drawn log-normally (a few busy, most quiet) and its in-flight
    level hovers around its own target (1 to 40 requests), so the load keeps crossing replica
    boundaries and prompt decisions happen as they would in production. The deployments'
    streams are interleaved at random, each keeping its own order (which is all Kafka keeps:
    a deployment's events share a partition)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = _deployment_names(deployments)
    weights = rng.lognormal(0.0, 1.0, deployments)
    per_deployment = rng.multinomial(pairs, weights / weights.sum())
    targets = rng.integers(1, 41, deployments)
    owner_parts: list[Any] = []
    kind_parts: list[Any] = []
    index_parts: list[Any] = []
    for d, n in enumerate(per_deployment.tolist()):
        if n == 0:
            continue
        k = min(int(targets[d]), n)
        # Starts 0..k-1, then start j / finish j-k alternately, then the last k finishes.
        starts = np.arange(n)
        finishes = np.arange(n)
        order_start = np.concatenate([np.arange(k), k + 2 * np.arange(n - k)])
        order_finish = np.concatenate([k + 1 + 2 * np.arange(n - k), 2 * n - k + np.arange(k)])
        seq_kind = np.empty(2 * n, dtype=bool)
        seq_index = np.empty(2 * n, dtype=np.int64)
        seq_kind[order_start] = True
        seq_index[order_start] = starts
        seq_kind[order_finish] = False
        seq_index[order_finish] = finishes
        owner_parts.append(np.full(2 * n, d, dtype=np.int32))
        kind_parts.append(seq_kind)
        index_parts.append(seq_index)
    owner = np.concatenate(owner_parts)
    kind = np.concatenate(kind_parts)
    index = np.concatenate(index_parts)
    # Random interleaving that keeps each deployment's order: shuffle the owners, then hand
    # each deployment's events out in sequence to the slots it drew.
    slots = rng.permutation(len(owner))
    shuffled_owner = owner[slots]
    by_owner = np.argsort(owner, kind="stable")
    rank_in_owner = np.empty(len(owner), dtype=np.int64)
    rank_in_owner[np.argsort(shuffled_owner, kind="stable")] = np.arange(len(owner))
    picked = by_owner[rank_in_owner]
    for d, i, s in zip(
        shuffled_owner.tolist(), index[picked].tolist(), kind[picked].tolist(), strict=True
    ):
        yield names[d], f"{d:08x}{i:024x}", s


def job_daemon_produce(
    bootstrap: str, topic: str, partitions: int, pairs: int, deployments: int, seed: int
) -> JobResult:
    """Produce the ingest workload once, keyed by deployment, with aiokafka's producer.

    Batches of up to ``PRODUCE_BATCH_BYTES`` are built per partition (``create_batch`` /
    ``send_batch``), the partition chosen by aiokafka's default partitioner on the key, exactly
    where ``send(key=...)`` would put it, without paying ``send``'s per-message cost two
    million times."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    from autoscaler.core.events import RequestFinished, RequestStarted, encode_event

    async def produce() -> JobResult:
        await _create_topic(bootstrap, topic, partitions)
        # Large batches: aiokafka keeps one batch in flight per partition, so with its 16 KiB
        # default two million events take minutes of round trips to produce.
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks=1, max_batch_size=PRODUCE_BATCH_BYTES
        )
        await producer.start()
        partitioner = DefaultPartitioner()
        all_partitions = list(range(partitions))
        part_of: dict[str, int] = {}
        batches: dict[int, Any] = {}
        pending: list[asyncio.Future[Any]] = []
        sent = 0
        sent_bytes = 0
        t0 = time.perf_counter()
        try:
            for name, request_id, is_start in ingest_workload(pairs, deployments, seed):
                replica = f"{name.rpartition('/')[2]}-{int(request_id[-3:], 16) % 8}"
                ts = time.time()
                event = (
                    RequestStarted(deployment=name, ts=ts, request_id=request_id, replica=replica)
                    if is_start
                    else RequestFinished(
                        deployment=name, ts=ts, request_id=request_id, replica=replica
                    )
                )
                value = encode_event(event)
                key = name.encode()
                partition = part_of.get(name)
                if partition is None:
                    partition = partitioner(key, all_partitions, all_partitions)
                    part_of[name] = partition
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    batch.close()
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                sent += 1
                sent_bytes += len(value)
            for partition, batch in batches.items():
                batch.close()
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        wall = time.perf_counter() - t0
        return {
            "topic": topic,
            "partitions": partitions,
            "deployments": deployments,
            "deployments_with_events": len(part_of),
            "pairs": pairs,
            "events": sent,
            "bytes": sent_bytes,
            "mean_event_bytes": sent_bytes / max(sent, 1),
            "produce_s": wall,
            "produced_at": time.time(),
            "maxrss_mib": maxrss_mib(),
        }

    return asyncio.run(produce())


# -- ingest: raw aiokafka vs the daemon ------------------------------------------------------


def _consumer_settings() -> dict[str, Any]:
    """The daemon's consumer settings, so the raw consumer is configured exactly alike."""
    from autoscaler.adapters.kafka_source import CONSUMER_SETTINGS
    from autoscaler.daemon.config import KafkaConfig

    max_batch = KafkaConfig.model_fields["max_batch"].default
    return {**CONSUMER_SETTINGS, "max_poll_records": max_batch, "max_batch": max_batch}


async def _consume_raw(bootstrap: str, topic: str, expected: int) -> JobResult:
    from aiokafka import AIOKafkaConsumer

    settings = _consumer_settings()
    max_batch = settings.pop("max_batch")
    t_start = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}", **settings
    )
    await consumer.start()
    consumer.subscribe([topic])
    count = 0
    size = 0
    polls = 0
    t_first: float | None = None
    try:
        while count < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=max_batch)
            if not batches:
                continue
            if t_first is None:
                t_first = time.perf_counter()
            polls += 1
            for messages in batches.values():
                for message in messages:
                    # Value bytes only: what the daemon hands to the decoder.
                    size += len(message.value or b"")
                count += len(messages)
        t_done = time.perf_counter()
    finally:
        await consumer.stop()
    assert t_first is not None
    return {
        "events": count,
        "bytes": size,
        "polls": polls,
        "rate_eps": count / (t_done - t_first),
        "consume_s": t_done - t_first,
        "wall_s": t_done - t_start,
    }


def _kafka_daemon(bootstrap: str, topic: str, group_prefix: str) -> Any:
    """A ``Daemon`` on embedded defaults consuming ``topic`` in a fresh consumer group."""
    from autoscaler.daemon.config import DaemonConfig, HttpConfig, KafkaConfig
    from autoscaler.daemon.run import Daemon

    return Daemon(
        DaemonConfig(
            http=HttpConfig(port=0),
            kafka=KafkaConfig(
                bootstrap_servers=bootstrap,
                topics=(topic,),
                group_id=f"{group_prefix}-{uuid.uuid4().hex[:8]}",
            ),
        )
    )


async def _consume_daemon(bootstrap: str, topic: str, expected: int) -> JobResult:

    t_start = time.perf_counter()
    # The daemon as `autoscaler run --config` builds it: embedded policy for every deployment,
    # in-memory state, dry-run actuator, ticker, HTTP server and policy watcher all running.
    daemon = _kafka_daemon(bootstrap, topic, "bench-daemon")
    source, engine = daemon.kafka, daemon.engine
    assert source is not None
    seen = 0
    polls = 0
    t_first: float | None = None
    t_done: float | None = None
    ticks: list[float] = []
    # Where the timed span goes, from wrappers at batch granularity (one call per poll,
    # partition batch, decision pass, commit or tick): they cost nothing measurable next to
    # the per-event work they time. What is left over is KafkaSource's own loop, decoding
    # included.
    spent = {"poll": 0.0, "ingest": 0.0, "decide": 0.0, "commit": 0.0, "tick": 0.0, "gc": 0.0}
    getmany = source.consumer.getmany
    commit = source.consumer.commit
    ingest, decide_pending, tick = engine.ingest, engine.decide_pending, engine.tick

    def timed(key: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                if t_first is not None and t_done is None:
                    spent[key] += time.perf_counter() - t0

        return wrapper

    async def timed_getmany(*args: Any, **kwargs: Any) -> Any:
        nonlocal t_first, t_done, polls
        if seen >= expected and t_done is None:
            # Everything applied, decided and committed: the loop is back for more.
            t_done = time.perf_counter()
            daemon.request_stop()
        t0 = time.perf_counter()
        batches = await getmany(*args, **kwargs)
        if batches:
            polls += 1
            if t_first is None:
                t_first = time.perf_counter()
                return batches
        if t_first is not None and t_done is None:
            spent["poll"] += time.perf_counter() - t0
        return batches

    async def counted_ingest(items: Sequence[Any], received: float) -> IngestResult:
        nonlocal seen
        result: IngestResult = await ingest(items, received)
        seen += len(items)
        return result

    async def timed_tick() -> None:
        t0 = time.perf_counter()
        await tick()
        ticks.append(time.perf_counter() - t0)
        if t_first is not None and t_done is None:
            spent["tick"] += ticks[-1]

    gc_started = [0.0]

    def gc_watch(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif t_first is not None and t_done is None:
            spent["gc"] += time.perf_counter() - gc_started[0]

    source.consumer.getmany = timed_getmany
    source.consumer.commit = timed("commit", commit)
    engine.ingest = timed("ingest", counted_ingest)
    engine.decide_pending = timed("decide", decide_pending)
    engine.tick = timed_tick
    gc.callbacks.append(gc_watch)
    try:
        await daemon.run()
    finally:
        gc.callbacks.remove(gc_watch)
    assert t_first is not None and t_done is not None
    consume_s = t_done - t_first
    # The ticker runs while the source awaits a poll: its time is inside "poll", shown apart.
    spent["poll"] -= spent["tick"]
    # Commits run as tasks beside the loop (KafkaSource does not wait for them), and garbage
    # collection happens inside the other rows: neither is part of the remainder.
    spent["source loop"] = consume_s - sum(spent[k] for k in ("poll", "ingest", "decide", "tick"))
    return {
        "events": seen,
        "polls": polls,
        "rate_eps": seen / consume_s,
        "consume_s": consume_s,
        "wall_s": time.perf_counter() - t_start,
        "spent_s": spent,
        "outcomes": _counter_total(engine.metrics.events),
        "rejected": sum(_counter_total(engine.metrics.rejected).values()),
        "deployments": len(engine.deployments),
        "decisions": sum(r.counts.decisions for r in engine.managed.values()),
        "scale_changes": len(daemon.actuator.applied),
        "ticks": len(ticks),
        "tick_s_max": max(ticks, default=0.0),
    }


def job_daemon_ingest(
    bootstrap: str, topic: str, expected: int, mode: str, profile_top: int = 0
) -> JobResult:
    """Consume the produced topic from the start with a fresh consumer group: ``raw`` is
    aiokafka alone (values only), ``daemon`` the whole daemon. Timed from the first non-empty
    poll to the moment every event has been consumed (and, for the daemon, applied, decided
    and committed)."""
    from autoscaler.logs import configure_logging

    # Production logging: JSON lines on stderr at info (the dry-run actuator logs each change).
    configure_logging("info", json=True)
    if mode not in ("raw", "daemon"):
        raise ValueError(f"mode must be raw or daemon, not {mode!r}")
    run = _consume_raw if mode == "raw" else _consume_daemon
    profiler = None
    if profile_top:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    result = asyncio.run(run(bootstrap, topic, expected))
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(profile_top)
    if result["events"] != expected:
        raise RuntimeError(f"consumed {result['events']} events, expected {expected}")
    return {**result, "mode": mode, "maxrss_mib": maxrss_mib()}


# -- reaction: produce -> decision with 1,000 deployments live ----------------------------------


async def _steady_producer(
    bootstrap: str,
    topic: str,
    deployments: int,
    rate: float,
    duration_s: float,
    service_s: float,
    seed: int,
) -> JobResult:
    """Requests at ``rate / 2`` per second in total (a start and a finish each), Poisson
    arrivals spread over the deployments with log-normal weights, exponential service times
    of mean ``service_s``. The rate ramps from 0.75x to 1.25x of the mean over the run (a
    morning ramp), so deployments keep outgrowing their replicas and prompt decisions keep
    happening. Each event's ``ts`` is the wall clock at the moment it is handed to the
    producer: the start of the latency measured."""
    import heapq
    import random

    from aiokafka import AIOKafkaProducer

    rng = random.Random(seed)
    names = _deployment_names(deployments)
    weights = [rng.lognormvariate(0.0, 1.0) for _ in names]
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    finishes: list[tuple[float, int, str, str]] = []  # (due, seq, deployment, request id)
    seq = 0
    sent = 0
    behind_max = 0.0
    request_rate = rate / 2.0
    start = time.time()
    next_arrival = start
    end = start + duration_s
    loop = asyncio.get_running_loop()
    try:
        while True:
            now = time.time()
            due_finish = finishes[0][0] if finishes else math.inf
            due = min(next_arrival, due_finish)
            if due >= end:
                break
            if due > now:
                await asyncio.sleep(due - now)
                continue
            behind_max = max(behind_max, now - due)
            if next_arrival <= due_finish:
                progress = (next_arrival - start) / duration_s
                current_rate = request_rate * (0.75 + 0.5 * progress)
                next_arrival += rng.expovariate(current_rate)
                index = _bisect(cumulative, rng.random() * total)
                name = names[index]
                seq += 1
                request_id = f"{index:04x}-{seq:012x}"
                heapq.heappush(
                    finishes, (now + rng.expovariate(1.0 / service_s), seq, name, request_id)
                )
                kind = "request_started"
            else:
                _, _, name, request_id = heapq.heappop(finishes)
                kind = "request_finished"
            value = json.dumps(
                {"type": kind, "deployment": name, "ts": time.time(), "request_id": request_id}
            ).encode()
            # Not awaiting delivery: a real producer does not either; send() only enqueues.
            await producer.send(topic, value, key=name.encode())
            sent += 1
            if sent % 256 == 0:
                await asyncio.sleep(0)  # let the producer's sender task run
        await producer.flush()
    finally:
        await producer.stop()
    del loop
    return {"sent": sent, "started_at": start, "duration_s": duration_s, "behind_max_s": behind_max}


def _bisect(cumulative: list[float], x: float) -> int:
    import bisect

    return min(bisect.bisect_right(cumulative, x), len(cumulative) - 1)


def job_daemon_reaction(
    bootstrap: str,
    deployments: int,
    rate: float,
    duration_s: float,
    warmup_s: float,
    service_s: float,
    partitions: int,
    seed: int,
) -> JobResult:
    """One daemon consuming a fresh topic while a producer process sends a steady stream.

    For every event after which ``Engine.ingest`` put a deployment in the pending set (the
    event made its load outgrow its replicas), the latency runs from that event's ``ts``
    (producer wall clock) to the moment ``Engine.decide`` returned for that deployment, which
    includes the dry-run actuator and the state store. The daemon is fed per partition batch,
    as in production; when a batch held several events of that deployment, the earliest one's
    ``ts`` is used (the latency is then an upper bound; how often that happened is reported)."""
    from autoscaler.core.events import Rejected
    from autoscaler.logs import configure_logging

    configure_logging("info", json=True)
    topic = f"bench-reaction-{uuid.uuid4().hex[:8]}"

    async def scenario() -> JobResult:
        await _create_topic(bootstrap, topic, partitions)
        daemon = _kafka_daemon(bootstrap, topic, "bench-reaction")
        source, engine = daemon.kafka, daemon.engine
        assert source is not None
        triggers: dict[str, tuple[float, float, int]] = {}  # name -> (ts, received, events)
        # (ts, received, decided, events of that deployment in the batch, decided by a tick)
        measured: list[tuple[float, float, float, int, bool]] = []
        transit: list[tuple[float, float]] = []  # (ts, received) of every event
        ticks: list[tuple[float, float, float]] = []  # (start wall time, duration, CPU time)
        passes: list[tuple[float, float, int]] = []  # decide_pending: (start, duration, count)
        pauses: list[tuple[float, float, int]] = []  # garbage collections: (start, s, gen)
        in_tick = False
        ingest, decide, tick = engine.ingest, engine.decide, engine.tick
        decide_pending = engine.decide_pending

        async def watched_ingest(items: Sequence[Any], received: float) -> IngestResult:
            # The engine's own pending set tells which deployments this batch made urgent.
            before = set(engine._pending)
            result: IngestResult = await ingest(items, received)
            fresh = engine._pending.keys() - before
            earliest: dict[str, float] = {}
            count: dict[str, int] = {}
            for item in items:
                if isinstance(item, Rejected):
                    continue
                transit.append((item.ts, received))
                if item.deployment in fresh:
                    name = item.deployment
                    earliest[name] = min(earliest.get(name, math.inf), item.ts)
                    count[name] = count.get(name, 0) + 1
            for name in fresh:
                triggers[name] = (earliest[name], received, count[name])
            return result

        async def watched_decide(name: str) -> Any:
            decision = await decide(name)
            hit = triggers.pop(name, None)
            if hit is not None and decision is not None:
                measured.append((hit[0], hit[1], time.time(), hit[2], in_tick))
            return decision

        async def watched_tick() -> None:
            nonlocal in_tick
            t0, cpu0 = time.time(), time.thread_time()
            in_tick = True
            try:
                await tick()
            finally:
                in_tick = False
                ticks.append((t0, time.time() - t0, time.thread_time() - cpu0))

        async def watched_pass() -> Any:
            t0 = time.time()
            decisions = await decide_pending()
            passes.append((t0, time.time() - t0, len(decisions)))
            return decisions

        gc_started = [0.0]

        def gc_watch(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                gc_started[0] = time.time()
            else:
                pauses.append((gc_started[0], time.time() - gc_started[0], info["generation"]))

        stalls: list[tuple[float, float]] = []  # (wall time, seconds the loop was late)

        async def watch_loop() -> None:
            # Asks for a turn every STALL_PROBE_S: how much later than that it comes is how
            # long something held the loop (a tick's slice, a decision pass, a GC pause).
            while True:
                asked = time.perf_counter()
                await asyncio.sleep(STALL_PROBE_S)
                late = time.perf_counter() - asked - STALL_PROBE_S
                if late > 0.001:
                    stalls.append((time.time(), late))

        engine.ingest = watched_ingest
        engine.decide = watched_decide
        engine.tick = watched_tick
        engine.decide_pending = watched_pass
        gc.callbacks.append(gc_watch)
        task = asyncio.create_task(daemon.run())
        probe = asyncio.create_task(watch_loop())
        deadline = time.monotonic() + 60
        while not source.consumer.assignment():
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon never got partitions: {task}")
            await asyncio.sleep(0.05)
        args = {
            "bootstrap": bootstrap,
            "topic": topic,
            "deployments": deployments,
            "rate": rate,
            "duration_s": warmup_s + duration_s,
            "service_s": service_s,
            "seed": seed,
        }
        # The producer is a process of its own: sharing this event loop would put its work
        # inside the latency being measured.
        producer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.daemon",
            "steady-producer",
            json.dumps(args),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await producer.communicate()
        if producer.returncode != 0:
            raise RuntimeError(f"producer exited {producer.returncode}")
        produced = json.loads(out.decode().strip().splitlines()[-1])
        await asyncio.sleep(2.0)  # the last events' decisions
        daemon.request_stop()
        await asyncio.wait_for(task, timeout=60)
        probe.cancel()
        gc.callbacks.remove(gc_watch)
        cutoff = produced["started_at"] + warmup_s
        end = produced["started_at"] + warmup_s + duration_s
        window = [m for m in measured if m[0] >= cutoff]
        prompt = [m for m in window if not m[4]]
        tick_times = [d for t, d, _ in ticks if cutoff <= t < end]
        tick_cpu = [c for t, _, c in ticks if cutoff <= t < end]
        pass_times = [d for t, d, _ in passes if cutoff <= t < end]
        pass_sizes = [n for t, _, n in passes if cutoff <= t < end]
        gc_times = [d for t, d, _ in pauses if cutoff <= t < end]
        received_all = [r - t for t, r in transit if t >= cutoff]
        stall_times = [d for t, d in stalls if cutoff <= t < end]
        return {
            "deployments": deployments,
            "deployments_seen": len(engine.deployments),
            "rate": rate,
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "service_s": service_s,
            "partitions": partitions,
            "produced": produced,
            "events_measured": len(received_all),
            "triggers": len(window),
            "triggers_by_tick": len(window) - len(prompt),
            "triggers_ambiguous": sum(1 for m in prompt if m[3] > 1),
            "warmup_triggers": len(measured) - len(window),
            "produce_to_decision": _summary([m[2] - m[0] for m in prompt]),
            "receive_to_decision": _summary([m[2] - m[1] for m in prompt]),
            "produce_to_receive": _summary(received_all),
            "ticks": len(tick_times),
            "tick_s_median": statistics.median(tick_times) if tick_times else float("nan"),
            "tick_s_max": max(tick_times, default=float("nan")),
            "tick_cpu_s_median": statistics.median(tick_cpu) if tick_cpu else float("nan"),
            "passes": len(pass_times),
            "pass_s": _summary(pass_times),
            "pass_decisions_median": statistics.median(pass_sizes) if pass_sizes else 0,
            "pass_decisions_max": max(pass_sizes, default=0),
            "gc_pauses": len(gc_times),
            "gc_s_total": sum(gc_times),
            "gc_s_max": max(gc_times, default=0.0),
            "gc_full": sum(1 for t, _, g in pauses if cutoff <= t < end and g == 2),
            "stall_s_max": max(stall_times, default=0.0),
            "stalls_over_target": sum(1 for d in stall_times if d > STALL_TARGET_S),
            "decisions": sum(r.counts.decisions for r in engine.managed.values()),
            "scale_changes": len(daemon.actuator.applied),
            "maxrss_mib": maxrss_mib(),
        }

    return asyncio.run(scenario())


# -- memory: 10,000 deployments tracked -----------------------------------------------------


def job_daemon_memory(
    deployments: int, requests_mean: float, span_s: float, tick_s: float, trace_top: int = 0
) -> JobResult:
    """Resident memory of a daemon-like process holding ``deployments`` deployments.

    The daemon's modules are imported (Kafka and HTTP adapters included) and an ``Engine`` is
    built as ``Daemon`` builds it (embedded policy, dry-run actuator, in-memory state,
    metrics); then each deployment receives a handful of requests (Poisson, mean
    ``requests_mean``) spread over ``span_s`` seconds, longer than the stable window, so its
    windows are filled, with prompt decisions after each batch and a tick every ``tick_s``.
    Time is the engine's clock, advanced by hand, so the run takes seconds, not minutes; the
    memory held does not depend on how fast the clock moved. RSS is read from
    ``/proc/self/status`` after a full garbage collection, before and after."""
    import autoscaler.adapters.kafka_source
    import autoscaler.daemon.run  # the daemon's whole import footprint
    from autoscaler.adapters.dry_run import DryRunActuator
    from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
    from autoscaler.config.loader import load_policies
    from autoscaler.daemon.engine import Engine
    from autoscaler.daemon.metrics import DaemonMetrics
    from autoscaler.logs import configure_logging
    from autoscaler.paths import BUNDLED_POLICY

    configure_logging("warning", json=True)  # 10,000 "would scale" lines are not the subject
    del autoscaler.adapters.kafka_source
    t0_wall = time.time()
    now = [t0_wall]
    actuator = DryRunActuator()
    engine = Engine(
        load_policies([BUNDLED_POLICY]),
        actuator,
        InMemoryStateStore(),
        DaemonMetrics(),
        lambda: now[0],
        decide_unmatched=True,
        leases=LocalLeases(),
    )
    names = _deployment_names(deployments)
    gc.collect()
    daemon_baseline = rss_mib()
    # The bench's own schedule needs numpy, which the daemon imports only to scan an HTTP body
    # of many events: its share of the baseline is measured and reported apart.
    import numpy

    del numpy
    gc.collect()
    baseline = rss_mib()
    if trace_top:
        import tracemalloc

        tracemalloc.start()
    t0 = time.perf_counter()
    ticks, tick_max = asyncio.run(
        _drive_memory(engine, now, names, requests_mean, span_s, tick_s, seed=11)
    )
    drive_s = time.perf_counter() - t0
    top: list[dict[str, Any]] = []
    by_file: list[dict[str, Any]] = []
    traced_mib = float("nan")
    if trace_top:
        import tracemalloc

        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        tracemalloc.stop()
        traced_mib = sum(s.size for s in snapshot.statistics("filename")) / 2**20
        for stat in snapshot.statistics("lineno")[:trace_top]:
            frame = stat.traceback[0]
            top.append(
                {
                    "where": f"{_short(frame.filename)}:{frame.lineno}",
                    "mib": stat.size / 2**20,
                    "blocks": stat.count,
                }
            )
        for stat in snapshot.statistics("filename")[:trace_top]:
            frame = stat.traceback[0]
            by_file.append(
                {"where": _short(frame.filename), "mib": stat.size / 2**20, "blocks": stat.count}
            )
    gc.collect()
    after = rss_mib()
    rest = asyncio.run(_ticks_at_rest(engine, now, tick_s))
    trackers = [auto.tracker for auto in engine.deployments.values()]
    return {
        "deployments": len(engine.deployments),
        "requests_mean": requests_mean,
        "requests": sum(t.counts["applied"] for t in trackers) // 2,
        "span_s": span_s,
        "tick_s": tick_s,
        "ticks": ticks,
        "tick_s_max": tick_max,
        **rest,
        "drive_s": drive_s,
        "daemon_baseline_rss_mib": daemon_baseline,
        "baseline_rss_mib": baseline,
        "rss_mib": after,
        "maxrss_mib": maxrss_mib(),
        "traced_mib": traced_mib,
        "tracemalloc": bool(trace_top),
        "top_lines": top,
        "top_files": by_file,
        "scale_changes": len(actuator.applied),
        "gc_objects": len(gc.get_objects()),
    }


async def _drive_memory(
    engine: Any,
    now: list[float],
    names: list[str],
    requests_mean: float,
    span_s: float,
    tick_s: float,
    seed: int,
) -> tuple[int, float]:
    """Feed the memory job's requests through ``engine`` on the hand-driven clock ``now``;
    returns the number of ticks and the longest one (seconds).

    The schedule lives in numpy arrays local to this function (returned to the system whole
    when it ends, so they leave nothing behind in the RSS read afterwards); event objects are
    made per batch."""
    import numpy as np

    from autoscaler.core.events import Event, RequestFinished, RequestStarted

    t0 = now[0]
    rng = np.random.default_rng(seed)
    # A handful of requests each (Poisson), at least one, so every deployment is tracked.
    counts = np.maximum(rng.poisson(requests_mean, len(names)), 1)
    owner = np.repeat(np.arange(len(names)), counts)
    number = np.concatenate([np.arange(c) for c in counts.tolist()])
    starts = t0 + rng.uniform(0.0, span_s - 5.0, len(owner))
    finishes = np.minimum(starts + rng.exponential(3.0, len(owner)), t0 + span_s)
    order = np.argsort(np.concatenate([starts, finishes]), kind="stable")
    stamps = np.concatenate([starts, finishes])[order]
    request = np.concatenate([np.arange(len(owner)), np.arange(len(owner))])[order]
    is_start = order < len(owner)

    def batch(lo: int, hi: int) -> list[Event]:
        out: list[Event] = []
        for k in range(lo, hi):
            r = int(request[k])
            d = int(owner[r])
            kind = RequestStarted if is_start[k] else RequestFinished
            rid = f"{d:08x}{int(number[r]):024x}"
            out.append(kind(deployment=names[d], ts=float(stamps[k]), request_id=rid))
        return out

    i, ticks, tick_max = 0, 0, 0.0
    batch_s = 0.05  # events arrive in 50 ms batches, as polls would hand them over
    t = t0
    next_tick = t0 + tick_s
    while t < t0 + span_s:
        t += batch_s
        j = int(np.searchsorted(stamps, t, side="right"))
        now[0] = t
        if j > i:
            await engine.ingest(batch(i, j), t)
            await engine.decide_pending()
            i = j
        if t >= next_tick:
            started = time.perf_counter()
            await engine.tick()
            tick_max = max(tick_max, time.perf_counter() - started)
            ticks += 1
            next_tick += tick_s
    return ticks, tick_max


async def _ticks_at_rest(engine: Any, now: list[float], tick_s: float) -> dict[str, float]:
    """After the traffic: silence longer than every window and the arrival history, ticks
    spaced by the slowest guardrail interval until every deployment is at its floor, then
    the tick that decides them all once more (and finds them at rest), and the ticks of the
    next ``RECHECK_SPAN_S`` (which recheck each resting deployment once, spread by name):
    all timed. Measured after the RSS reading, so they add nothing to it."""
    from autoscaler.core.measures import RATE_HISTORY_S

    now[0] += RATE_HISTORY_S + 60.0
    for _ in range(8):  # slo's 60 s delay and interval take the fleet down in whole steps
        await engine.tick()
        now[0] += 70.0
    timed: list[float] = []
    decided: list[int] = []
    ticks = 1 + round(2 * engine.IDLE_RECHECK_S / tick_s)
    for _ in range(ticks):
        # The deployments this tick decides: the ones not resting until later.
        decided.append(sum(1 for record in engine.managed.values() if record.due <= now[0]))
        started = time.perf_counter()
        await engine.tick()
        timed.append(time.perf_counter() - started)
        now[0] += tick_s
    rest = sorted(timed[1:])
    return {
        "full_tick_s": timed[0],
        "full_tick_decided": decided[0],
        "rest_ticks": len(rest),
        "rest_span_s": len(rest) * tick_s,
        "rest_decided": sum(decided[1:]),
        "rest_tick_median_s": rest[len(rest) // 2],
        "rest_tick_max_s": rest[-1],
        "rest_tick_mean_s": sum(rest) / len(rest),
    }


def _short(filename: str) -> str:
    """A path relative to the repository or to site-packages, for the report."""
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    root = str(Path(__file__).resolve().parents[1]) + "/"
    return filename.removeprefix(root)


# -- orchestration (in bench.run's parent process) -------------------------------------------


class JobOutcome(Protocol):
    result: JobResult | None
    error: str | None
    elapsed_s: float


RunJob = Callable[[str, dict[str, Any], float], JobOutcome]


@dataclass(frozen=True)
class DaemonSizes:
    pairs: int
    ingest_deployments: int
    partitions: int
    ingest_rounds: int
    reaction_deployments: int
    reaction_rounds: int
    reaction_rate: float
    reaction_s: float
    reaction_warmup_s: float
    wide_reaction_deployments: int
    """One more reaction round with this many deployments live (0: none)."""
    memory_deployments: int
    job_timeout_s: float


DAEMON_FULL = DaemonSizes(1_000_000, 1000, 8, 3, 1000, 3, 4000.0, 40.0, 10.0, 10_000, 10_000, 900.0)
DAEMON_QUICK = DaemonSizes(50_000, 200, 8, 1, 1000, 1, 2000.0, 10.0, 5.0, 0, 1000, 300.0)


@dataclass
class DaemonRun:
    sizes: DaemonSizes
    quick: bool
    kafka: str = ""
    """How the broker was obtained, for the report."""
    jobs: dict[str, JobOutcome] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    elapsed_s: float = 0.0


@contextmanager
def kafka_broker(bootstrap: str | None) -> Iterator[tuple[str, str]]:
    """A real broker: the given one, or one started by ``devtools.services`` in a temporary
    folder of its own (never the shared ``.services``), stopped and removed afterwards."""
    if bootstrap:
        yield bootstrap, f"an existing broker at {bootstrap} (`--kafka`)"
        return
    from devtools.services import KAFKA_VERSION, start, stop

    base = Path(tempfile.mkdtemp(prefix="bench-services-"))
    try:
        print(f"[bench] starting Kafka {KAFKA_VERSION} in {base} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        env = start(["kafka"], base)
        took = time.perf_counter() - t0
        yield (
            env["KAFKA_BOOTSTRAP"],
            f"Kafka {KAFKA_VERSION} (KRaft, one broker, `devtools.services`) started by the "
            f"benchmark on loopback in {took:.0f} s, stopped after it",
        )
    finally:
        stop(base)
        shutil.rmtree(base, ignore_errors=True)


def measure_daemon(
    sizes: DaemonSizes, quick: bool, run_job: RunJob, bootstrap: str | None
) -> DaemonRun:
    run = DaemonRun(sizes, quick)
    # This part's own date and load (in a full `make bench` it starts long after the rest).
    run.facts["Date (UTC)"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    run.facts["Load average at start (1/5/15 min)"] = " / ".join(
        f"{x:.2f}" for x in os.getloadavg()
    )
    t0 = time.perf_counter()
    jobs = run.jobs
    try:
        with kafka_broker(bootstrap) as (address, how):
            run.kafka = how
            topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
            jobs["produce"] = run_job(
                "daemon_produce",
                {
                    "bootstrap": address,
                    "topic": topic,
                    "partitions": sizes.partitions,
                    "pairs": sizes.pairs,
                    "deployments": sizes.ingest_deployments,
                    "seed": 3,
                },
                sizes.job_timeout_s,
            )
            produced = jobs["produce"].result
            if produced is not None:
                # Alternating, so a slow spell of the shared machine hits both sides alike.
                for round_ in range(1, sizes.ingest_rounds + 1):
                    for mode in ("raw", "daemon"):
                        jobs[f"ingest_{mode}_{round_}"] = run_job(
                            "daemon_ingest",
                            {
                                "bootstrap": address,
                                "topic": topic,
                                "expected": produced["events"],
                                "mode": mode,
                            },
                            sizes.job_timeout_s,
                        )
            # Several rounds, each a fresh daemon on a fresh topic: the tail of a latency
            # distribution on a shared machine moves from run to run.
            for round_ in range(1, sizes.reaction_rounds + 1):
                jobs[f"reaction_{round_}"] = run_job(
                    "daemon_reaction",
                    {
                        "bootstrap": address,
                        "deployments": sizes.reaction_deployments,
                        "rate": sizes.reaction_rate,
                        "duration_s": sizes.reaction_s,
                        "warmup_s": sizes.reaction_warmup_s,
                        "service_s": 2.0,
                        "partitions": sizes.partitions,
                        "seed": 4 + round_,
                    },
                    sizes.job_timeout_s,
                )
            if sizes.wide_reaction_deployments:
                jobs["wide_reaction"] = run_job(
                    "daemon_reaction",
                    {
                        "bootstrap": address,
                        "deployments": sizes.wide_reaction_deployments,
                        "rate": sizes.reaction_rate,
                        "duration_s": sizes.reaction_s,
                        # Longer: 10,000 deployments take longer to all appear.
                        "warmup_s": 2 * sizes.reaction_warmup_s,
                        "service_s": 2.0,
                        "partitions": sizes.partitions,
                        "seed": 11,
                    },
                    sizes.job_timeout_s,
                )
    except Exception as exc:  # a broker that does not start: reported, not hidden
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"[bench] daemon benchmarks: {run.error}", file=sys.stderr, flush=True)
    memory_args = {
        "deployments": sizes.memory_deployments,
        "requests_mean": 8.0,
        "span_s": 75.0,
        "tick_s": 2.0,
    }
    jobs["memory"] = run_job("daemon_memory", memory_args, sizes.job_timeout_s)
    # Where the memory goes, under tracemalloc: a fifth of the deployments (the same workload
    # per deployment), since tracing every allocation makes the full size take minutes.
    traced = {**memory_args, "deployments": max(1000, sizes.memory_deployments // 5)}
    jobs["memory_trace"] = run_job(
        "daemon_memory", {**traced, "trace_top": 12}, sizes.job_timeout_s
    )
    run.elapsed_s = time.perf_counter() - t0
    run.facts["Load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return run


# -- the report section ----------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _rounds(run: DaemonRun, mode: str) -> list[JobResult]:
    return [
        job.result
        for key, job in sorted(run.jobs.items())
        if key.startswith(f"ingest_{mode}_") and job.result is not None
    ]


def render_daemon(run: DaemonRun, facts: dict[str, str]) -> list[str]:
    out = [
        SECTION_START,
        "## 4. The daemon: Kafka ingest, reaction time, memory",
        "",
        "This section is written by `python -m bench.run --only daemon --out BENCHMARKS.md` "
        "(also part of `make bench`); it replaces only its own part of this file, so the "
        "sections above keep the figures of the run that measured them. Every figure below "
        "comes from the run described here.",
        "",
    ]
    if run.quick:
        out += ["> **Quick mode:** reduced sizes; targets are not judged at their real sizes.", ""]
    env = {
        **facts,
        **run.facts,
        "Kafka": run.kafka or "not started",
        "Daemon benchmark wall time": f"{run.elapsed_s:.0f} s ({run.elapsed_s / 60:.1f} min)",
    }
    out += ["### Environment", ""]
    out += table(["", ""], [[k, v] for k, v in env.items()])
    out.append("")
    if run.error:
        out += [f"**Kafka jobs not run:** {run.error}", ""]
    out += _ingest_lines(run)
    out += _reaction_lines(run)
    out += _wide_reaction_lines(run)
    out += _memory_lines(run)
    out += [
        "### How to reproduce",
        "",
        "`make bench` runs these jobs with the others; `.venv/bin/python -m bench.run --only "
        "daemon --out BENCHMARKS.md` runs only these and rewrites only this section "
        "(`--quick` for a smoke run, `--kafka HOST:PORT` to use a running broker instead of "
        "starting one). `.venv/bin/python -m bench.daemon profile` runs the daemon's ingest "
        "under cProfile.",
        "",
        SECTION_END,
    ]
    return out


def _ingest_lines(run: DaemonRun) -> list[str]:
    s = run.sizes
    out = ["### Ingest: events decoded and applied per second, one daemon process", ""]
    produce = run.jobs.get("produce")
    if produce is None or produce.result is None:
        return [*out, f"Not measured: {produce.error if produce else 'not run'}", ""]
    p = produce.result
    raw, daemon = _rounds(run, "raw"), _rounds(run, "daemon")
    out += [
        f"Workload: {p['pairs']:,} requests (a `request_started` and a `request_finished` "
        f"each: {p['events']:,} events, {p['mean_event_bytes']:.0f} bytes on average) over "
        f"{p['deployments_with_events']:,} deployments (log-normal rates, each deployment's "
        "in-flight hovering around its own level of 1 to 40), keyed by deployment into a "
        f"topic of {p['partitions']} partitions, produced once with aiokafka's producer "
        f"({p['produce_s']:.0f} s, not part of any figure). Then, alternately, "
        f"{s.ingest_rounds} round(s) of each, in fresh processes with fresh consumer groups from "
        "the earliest offset:",
        "",
        "- **raw**: an `AIOKafkaConsumer` with the daemon's consumer settings "
        "(`autoscaler.adapters.kafka_source.CONSUMER_SETTINGS`, `max_poll_records` = "
        "`getmany(max_records=...)` = the daemon's `max_batch`), `getmany(timeout_ms=100)` in "
        "a loop, reading each message's value bytes and nothing else, no commits;",
        "- **daemon**: `autoscaler.daemon.run.Daemon` on embedded defaults with Kafka "
        "configured, as `autoscaler run --config` builds it: `KafkaSource` decoding and "
        "`Engine.ingest` applying every batch, `decide_pending` after each poll (prompt "
        "decisions through the core, the dry-run actuator and the in-memory state store), "
        "offsets committed after every poll (the commit's round trip overlapping the next "
        f"batch), the {run_tick_s()} s ticker deciding every deployment, HTTP server and policy "
        "watcher running, JSON logs at info on stderr.",
        "",
        "Rate = events / time from the first non-empty poll to the moment the last event was "
        "consumed (raw) or applied, decided and committed (daemon). Consumer start-up and "
        "group join are outside it (listed as wall). Events carry their production time as "
        "`ts`, so the tracker counts most as `late` (they are consumed minutes after): those "
        "are applied exactly like timely ones.",
        "",
    ]
    rows = []
    for key in sorted(k for k in run.jobs if k.startswith("ingest_")):
        job = run.jobs[key]
        _, mode, round_ = key.split("_")
        if job.result is None:
            rows.append([round_, mode, "—", "—", "—", job.error or "failed"])
            continue
        r = job.result
        rows.append(
            [
                round_,
                mode,
                f"{r['rate_eps']:,.0f}",
                f"{r['consume_s']:.1f} s",
                f"{r['wall_s']:.1f} s",
                f"{r['maxrss_mib']:.0f} MiB",
            ]
        )
    out += table(["round", "consumer", "events/s", "timed", "wall", "peak RSS"], rows)
    out.append("")
    if raw and daemon:
        raw_med = statistics.median(r["rate_eps"] for r in raw)
        daemon_med = statistics.median(r["rate_eps"] for r in daemon)
        ratio = daemon_med / raw_med
        out += table(
            ["figure", "measured (median of rounds)", "target", "met"],
            [
                ["raw aiokafka consume", f"{raw_med:,.0f} events/s", "—", "—"],
                [
                    "daemon decode + apply",
                    f"{daemon_med:,.0f} events/s",
                    f">= {INGEST_TARGET_EPS:,.0f} events/s",
                    met(daemon_med >= INGEST_TARGET_EPS),
                ],
                [
                    "daemon / raw",
                    f"{ratio:.0%}",
                    f">= {INGEST_RATIO_TARGET:.0%}",
                    met(ratio >= INGEST_RATIO_TARGET),
                ],
            ],
        )
        last = daemon[-1]
        outcomes = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(last["outcomes"].items()))
        out += [
            "",
            f"Daemon round {len(daemon)}: outcomes {outcomes}; {last['rejected']:.0f} rejected; "
            f"{last['deployments']:,} deployments; {last['decisions']:,.0f} decisions "
            f"(ticks: {last['ticks']}, the longest {_ms(last['tick_s_max'])}); "
            f"{last['scale_changes']:,} scale changes.",
            "",
            "**Where the daemon's time goes** (median over its rounds of each part of the timed "
            "span, from wrappers around the calls named, one call per poll, partition batch, "
            "decision pass, commit or tick; µs per event = part / events):",
            "",
        ]
        rows = []
        for key, label in BREAKDOWN:
            values = [r["spent_s"][key] for r in daemon]
            share = statistics.median(
                v / r["consume_s"] for v, r in zip(values, daemon, strict=True)
            )
            per_event = statistics.median(
                v / r["events"] * 1e6 for v, r in zip(values, daemon, strict=True)
            )
            rows.append([label, f"{per_event:.1f}", f"{share:.0%}"])
        raw_us = statistics.median(1e6 / r["rate_eps"] for r in raw)
        rows.append(["*raw consumer, whole loop (for comparison)*", f"{raw_us:.1f}", "—"])
        out += table(["part", "µs per event", "share of the timed span"], rows)
    out.append("")
    return out


BREAKDOWN = (
    ("poll", "`getmany`: aiokafka's fetch, batch parsing, record objects"),
    ("source loop", "the rest of `KafkaSource.run`: decoding (`decode_event`), bookkeeping"),
    ("ingest", "`Engine.ingest`: the tracker's `apply` per event, pending checks, counters"),
    ("decide", "`Engine.decide_pending` after each poll: prompt decisions"),
    ("tick", "ticks: every deployment decided in one go"),
    ("gc", "garbage collection pauses (inside the rows above, not added)"),
    ("commit", "offset commits in flight (beside the loop, not added)"),
)


def _reaction_lines(run: DaemonRun) -> list[str]:
    out = ["### Reaction: event produced -> decision made, 1,000 deployments live", ""]
    rounds = [
        (key.rpartition("_")[2], job)
        for key, job in sorted(run.jobs.items())
        if key.startswith("reaction_")
    ]
    done = [job.result for _, job in rounds if job.result is not None]
    if not done:
        errors = "; ".join(job.error or "failed" for _, job in rounds) or "not run"
        return [*out, f"Not measured: {errors}", ""]
    r = done[0]
    out += [
        f"{len(rounds)} round(s), each a fresh daemon (as above) consuming a fresh "
        f"topic of {r['partitions']} partitions while a separate producer process sends "
        f"{r['rate']:,.0f} events/s on average ({r['rate'] / 2:,.0f} requests/s: Poisson "
        f"arrivals over {r['deployments']:,} deployments with log-normal weights, exponential "
        f"service times of mean {r['service_s']:g} s, the rate ramping from 0.75x to 1.25x "
        "over the round, so deployments keep outgrowing their replicas) with aiokafka's "
        f"default producer settings (`linger_ms=0`): {r['warmup_s']:g} s of warm-up "
        f"(deployments appearing, left out) plus {r['duration_s']:g} s measured.",
        "",
        "**What is measured.** A *trigger* is an event after which `Engine.ingest` put its "
        "deployment in the pending set (`needs_prompt_decision`: its load outgrew its "
        "replicas). Its latency runs from the event's `ts` (the producer's wall clock when it "
        "handed the event to aiokafka) to the moment `Engine.decide` returned for that "
        "deployment (decision made, given to the dry-run actuator, saved to the state store), "
        "read in the daemon process on the same machine's clock. Events reach the engine per "
        "partition batch, as in production; when a batch held several events of the "
        "deployment, the earliest one's `ts` is taken (an upper bound). Also shown: the same "
        "decisions timed from the moment the poll returned (`received`, what "
        "`autoscaler_event_to_decision_seconds` observes), and the transit of every event "
        "through producer, broker and consumer up to the daemon's loop (`ts` to `received`).",
        "",
    ]
    rows = []
    for name, job in rounds:
        if job.result is None:
            rows.append([name, job.error or "failed", *["—"] * 9])
            continue
        x = job.result
        p2d, r2d, p2r = x["produce_to_decision"], x["receive_to_decision"], x["produce_to_receive"]
        rows.append(
            [
                name,
                f"{p2d['count']:,.0f}",
                " / ".join(_ms(p2d[k]) for k in ("p50", "p90", "p99")),
                _ms(p2d["max"]),
                " / ".join(_ms(r2d[k]) for k in ("p50", "p99")),
                " / ".join(_ms(p2r[k]) for k in ("p50", "p99")),
                f"{p2r['count']:,.0f}",
                f"{_ms(x['tick_s_median'])} / {_ms(x['tick_s_max'])}",
                f"{_ms(x['gc_s_max'])} ({x['gc_full']} full)",
                _ms(x["stall_s_max"]),
            ]
        )
    header = [
        "round",
        "triggers",
        "produce -> decision p50 / p90 / p99",
        "max",
        "poll -> decision p50 / p99",
        "transit p50 / p99",
        "events",
        "tick median / longest",
        "longest GC pause",
        "longest loop stall",
    ]
    out += table(header, rows)
    p50s = [x["produce_to_decision"]["p50"] for x in done]
    p99s = [x["produce_to_decision"]["p99"] for x in done]
    p99 = statistics.median(p99s)
    out += [
        "",
        *table(
            ["figure", f"measured (median of {len(done)} round(s))", "target", "met"],
            [
                ["produce -> decision p50", _ms(statistics.median(p50s)), "—", "—"],
                [
                    "produce -> decision p99",
                    f"{_ms(p99)} (rounds: {', '.join(_ms(v) for v in p99s)})",
                    f"< {REACTION_P99_TARGET_S * 1000:.0f} ms",
                    met(p99 < REACTION_P99_TARGET_S),
                ],
            ],
        ),
        "",
    ]
    events = sum(x["events_measured"] for x in done)
    triggers = sum(x["produce_to_decision"]["count"] for x in done)
    passes = [x["pass_s"] for x in done]
    out += [
        "**Where the time goes** (measured rounds together): "
        f"{triggers / max(events, 1):.0%} of events were triggers "
        f"({triggers / (len(done) * r['duration_s']):,.0f} a second): with Poisson load around "
        "capacity the instantaneous load often exceeds what the replicas are meant to carry, "
        "so most decisions are prompt ones, most of them keeping the replica count. "
        "`decide_pending` passes (one after each poll) took p50 "
        f"{_ms(statistics.median(p['p50'] for p in passes))}, p99 "
        f"{_ms(statistics.median(p['p99'] for p in passes))} for a median of "
        f"{statistics.median(x['pass_decisions_median'] for x in done):.0f} decisions. "
        f"Every {run_tick_s()} s a tick decides all {r['deployments_seen']:,} deployments in "
        "one go while the event loop waits: median "
        f"{_ms(statistics.median(x['tick_s_median'] for x in done))} wall "
        f"({_ms(statistics.median(x['tick_cpu_s_median'] for x in done))} CPU), longest "
        f"{_ms(max(x['tick_s_max'] for x in done))}; events arriving meanwhile wait in the "
        "consumer, which is what the transit tail shows. Garbage collection: "
        f"{sum(x['gc_pauses'] for x in done):,} pauses, "
        f"{sum(x['gc_full'] for x in done)} of them full collections, the longest "
        f"{_ms(max(x['gc_s_max'] for x in done))}. Peak RSS of a daemon process: "
        f"{max(x['maxrss_mib'] for x in done):.0f} MiB.",
        "",
    ]
    return out


def _wide_reaction_lines(run: DaemonRun) -> list[str]:
    job = run.jobs.get("wide_reaction")
    if job is None:
        return []
    out = [f"### Reaction with {run.sizes.wide_reaction_deployments:,} deployments live", ""]
    if job.result is None:
        return [*out, f"Not measured: {job.error or 'failed'}", ""]
    x = job.result
    p2d = x["produce_to_decision"]
    out += [
        f"One round as above, with {x['deployments']:,} deployments "
        f"({x['deployments_seen']:,} of them sent events and tracked) at the same "
        f"{x['rate']:,.0f} events/s, {x['warmup_s']:g} s of warm-up. A probe task asks the "
        f"event loop for a turn every {STALL_PROBE_S * 1000:g} ms; a *stall* is how much "
        "later than asked the turn came (a tick's slice of decisions, a decision pass, a "
        f"garbage collection). {p2d['count']:,.0f} triggers; ticks took median "
        f"{_ms(x['tick_s_median'])} wall, longest {_ms(x['tick_s_max'])} (sliced, the loop "
        "turning in between).",
        "",
    ]
    out += table(
        ["figure", "measured", "target", "met"],
        [
            [
                "produce -> decision p50 / p99",
                f"{_ms(p2d['p50'])} / {_ms(p2d['p99'])}",
                f"p99 < {WIDE_REACTION_P99_TARGET_S * 1000:.0f} ms",
                met(p2d["p99"] < WIDE_REACTION_P99_TARGET_S),
            ],
            [
                "longest loop stall",
                f"{_ms(x['stall_s_max'])} ({x['stalls_over_target']} over the target; "
                f"longest GC pause {_ms(x['gc_s_max'])})",
                f"<= {STALL_TARGET_S * 1000:.0f} ms",
                met(x["stall_s_max"] <= STALL_TARGET_S),
            ],
        ],
    )
    return [*out, ""]


def run_tick_s() -> str:
    """The daemon's default tick, as configured (not restated by hand)."""
    from autoscaler.daemon.config import DaemonConfig

    return f"{DaemonConfig.model_fields['tick_s'].default:g}"


def _memory_lines(run: DaemonRun) -> list[str]:
    out = ["### Memory: resident set with many deployments tracked", ""]
    job = run.jobs.get("memory")
    if job is None or job.result is None:
        return [*out, f"Not measured: {job.error if job else 'not run'}", ""]
    r = job.result
    held = r["rss_mib"] - r["baseline_rss_mib"]
    rss_mb = r["rss_mib"] * 2**20 / 1e6
    out += [
        "One process imports the daemon (Kafka and HTTP adapters included) and builds an "
        "`Engine` as `Daemon` does (embedded policy for every deployment, dry-run actuator, "
        f"in-memory state store, metrics); then {r['deployments']:,} deployments each "
        f"receive a handful of requests (Poisson, mean {r['requests_mean']:g}, at least one; "
        f"{r['requests']:,} in all) spread over {r['span_s']:g} s, longer than the 60 s "
        "stable window, so every window is filled; events go through `Engine.ingest` in "
        f"50 ms batches with `decide_pending` after each, and a tick every {r['tick_s']:g} s "
        f"decides every deployment ({r['ticks']} ticks). The engine's clock is advanced by "
        f"hand (the run took {r['drive_s']:.0f} s); memory held does not depend on the "
        "clock's pace. RSS is `VmRSS` after `gc.collect()`; peak is `ru_maxrss`.",
        "",
    ]
    out += table(
        ["figure", "measured", "target", "met"],
        [
            [
                "RSS before any deployment (daemon imports, engine)",
                f"{r['daemon_baseline_rss_mib']:.0f} MiB",
                "—",
                "—",
            ],
            [
                "... plus numpy (the benchmark's schedule; a daemon loads it at its first HTTP "
                "body of many events, never for Kafka)",
                f"{r['baseline_rss_mib'] - r['daemon_baseline_rss_mib']:.0f} MiB",
                "—",
                "—",
            ],
            [
                f"RSS with {r['deployments']:,} deployments tracked (numpy included)",
                f"{r['rss_mib']:.0f} MiB ({rss_mb:.0f} MB)",
                f"< {MEMORY_TARGET_MB:.0f} MB",
                met(rss_mb < MEMORY_TARGET_MB),
            ],
            ["peak RSS", f"{r['maxrss_mib']:.0f} MiB", "—", "—"],
            [
                "held by the deployments (after - before)",
                f"{held:.0f} MiB ({held * 1024 / max(r['deployments'], 1):.1f} KiB each)",
                "—",
                "—",
            ],
        ],
    )
    out += [
        "",
        f"Objects the garbage collector tracks at the end: {r['gc_objects']:,}. The longest "
        f"tick over the {r['deployments']:,} deployments took {r['tick_s_max']:.2f} s (wall time, "
        f"the event loop blocked throughout) against a {r['tick_s']:g} s tick interval.",
        "",
    ]
    if "rest_tick_median_s" in r:
        out += [
            "**Deployments at rest** (decisions on time, not sweeps): after the traffic the "
            "clock jumps past every window and the 600 s arrival history, and ticks 70 s apart "
            "bring every deployment to its floor. Then one tick decides "
            f"{r['full_tick_decided']:,} deployments and finds them at rest, in "
            f"{_ms(r['full_tick_s'])} (what every tick cost before). The "
            f"{r['rest_ticks']} ticks of the next {r['rest_span_s']:g} s decide "
            f"{r['rest_decided']:,} in all: each resting deployment is rechecked once, after "
            "10 to 20 s (`Engine.IDLE_RECHECK_S`, spread by name). Those ticks took "
            f"{_ms(r['rest_tick_median_s'])} median, {_ms(r['rest_tick_mean_s'])} mean and "
            f"{_ms(r['rest_tick_max_s'])} at most (a garbage collection can land in one), "
            f"{r['full_tick_s'] / max(r['rest_tick_mean_s'], 1e-9):,.0f}x less than the full "
            "tick on average, measured side by side in this run.",
            "",
        ]
    trace = run.jobs.get("memory_trace")
    if trace is not None and trace.result is not None and trace.result["top_lines"]:
        t = trace.result
        files = ", ".join(f"`{x['where']}` {x['mib']:.1f}" for x in t["top_files"][:8])
        out += [
            "Where it goes: the same workload with "
            f"{t['deployments']:,} deployments under `tracemalloc` (started after the "
            f"baseline): {t['traced_mib']:.0f} MiB live at the end, "
            f"{t['traced_mib'] * 1024 / max(t['deployments'], 1):.1f} KiB per deployment. By "
            f"file (MiB): {files}. Lines in `bench/daemon.py` are the request id strings the "
            "benchmark made and the trackers keep (in flight, or remembered as finished). "
            "The largest allocation sites:",
            "",
        ]
        out += table(
            ["allocated at", "MiB", "blocks"],
            [[f"`{x['where']}`", f"{x['mib']:.1f}", f"{x['blocks']:,}"] for x in t["top_lines"]],
        )
        out.append("")
    return out


def splice(
    existing: str, section: list[str], start_mark: str = SECTION_START, end_mark: str = SECTION_END
) -> str:
    """``existing`` with the daemon's section (by default) replaced or appended."""
    return splice_section(existing, section, start_mark, end_mark)


# -- command line (internal producer, profiling aid) -----------------------------------------


def profile(pairs: int, deployments: int, top: int, bootstrap: str | None) -> None:
    """Produce ``pairs`` requests, then the daemon ingest job under cProfile (stderr)."""
    with kafka_broker(bootstrap) as (address, _):
        topic = f"bench-profile-{uuid.uuid4().hex[:8]}"
        produced = job_daemon_produce(address, topic, 8, pairs, deployments, 3)
        print(f"produced {produced['events']:,} events", file=sys.stderr)
        result = job_daemon_ingest(address, topic, produced["events"], "daemon", top)
        print(f"daemon: {result['rate_eps']:,.0f} events/s (under the profiler)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    producer = sub.add_parser("steady-producer", help="(internal) the reaction job's producer")
    producer.add_argument("args")
    prof = sub.add_parser("profile", help="cProfile of the daemon consuming from Kafka")
    prof.add_argument("--pairs", type=int, default=200_000)
    prof.add_argument("--deployments", type=int, default=1000)
    prof.add_argument("--top", type=int, default=30)
    prof.add_argument("--kafka", help="use this broker instead of starting one")
    args = parser.parse_args(argv)
    if args.command == "steady-producer":
        result = asyncio.run(_steady_producer(**json.loads(args.args)))
        print(json.dumps(result), flush=True)
        return 0
    profile(args.pairs, args.deployments, args.top, args.kafka)
    return 0


JOBS: dict[str, Callable[..., JobResult]] = {
    "daemon_produce": job_daemon_produce,
    "daemon_ingest": job_daemon_ingest,
    "daemon_reaction": job_daemon_reaction,
    "daemon_memory": job_daemon_memory,
}

if __name__ == "__main__":
    raise SystemExit(main())
