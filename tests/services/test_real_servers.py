"""The real servers the daemon's tests run against: each answers its own protocol."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
import urllib.request

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def redis_command(url: str, *words: str) -> bytes:
    parsed = urllib.parse.urlparse(url)
    payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=5) as conn:
        conn.sendall(payload.encode())
        return conn.recv(1024)


def test_redis_answers(services: dict[str, str]) -> None:
    url = services["REDIS_URL"]
    assert url.startswith("redis://127.0.0.1:")
    assert redis_command(url, "PING") == b"+PONG\r\n"
    assert redis_command(url, "SET", "autoscaler:smoke", "1") == b"+OK\r\n"
    assert redis_command(url, "GET", "autoscaler:smoke") == b"$1\r\n1\r\n"


def test_prometheus_scrapes_and_answers_queries(services: dict[str, str]) -> None:
    url = services["PROMETHEUS_URL"]
    deadline = time.monotonic() + 30
    result: list[object] = []
    while time.monotonic() < deadline and not result:
        with urllib.request.urlopen(f"{url}/api/v1/query?query=up", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success"
        result = body["data"]["result"]
        time.sleep(0.5)
    assert result, "prometheus never scraped its own target"


def test_kafka_round_trip(services: dict[str, str]) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    event = b'{"type":"queue_length","deployment":"ns/app","ts":1,"value":3}'

    async def round_trip() -> tuple[bytes | None, bytes | None]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("smoke-events", event, key=b"ns/app")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "smoke-events",
            bootstrap_servers=bootstrap,
            group_id="smoke",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), timeout=60)
        finally:
            await consumer.stop()
        return message.key, message.value

    assert asyncio.run(round_trip()) == (b"ns/app", event)
