"""Producing test events into the real Kafka broker."""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaProducer


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def produce_sync(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    asyncio.run(produce(bootstrap, topic, messages))


def event(kind: str, deployment: str, rid: str) -> tuple[bytes, bytes]:
    body = {"type": kind, "deployment": deployment, "ts": time.time(), "request_id": rid}
    return deployment.encode(), json.dumps(body).encode()


def started(deployment: str, rid: str) -> tuple[bytes, bytes]:
    return event("request_started", deployment, rid)


def finished(deployment: str, rid: str) -> tuple[bytes, bytes]:
    return event("request_finished", deployment, rid)
