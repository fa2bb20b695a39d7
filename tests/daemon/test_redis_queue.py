"""Queue length read from a real Redis list and stream drives decisions (KEDA's redis scalers)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from autoscaler.daemon.config import DaemonConfig, HttpConfig, RedisQueueConfig
from autoscaler.daemon.run import Daemon

POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: batch/*}]\n"
)


def test_list_and_stream_lengths_become_queue_length(
    services: dict[str, str], tmp_path: Path
) -> None:
    url = services["REDIS_URL"]
    tag = uuid.uuid4().hex[:8]
    jobs, stream, grouped = f"jobs:{tag}", f"stream:{tag}", f"grouped:{tag}"
    (tmp_path / "p.yaml").write_text(POLICY)
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.1,
        redis_url=url,
        redis_queues=(
            RedisQueueConfig(deployment="batch/list-worker", key=jobs),
            RedisQueueConfig(deployment="batch/stream-worker", key=stream, kind="stream"),
            RedisQueueConfig(
                deployment="batch/group-worker", key=grouped, kind="stream", stream_group="workers"
            ),
        ),
        redis_queue_interval_s=0.1,
    )

    async def scenario() -> None:
        redis = Redis.from_url(url)
        await redis.rpush(jobs, *[f"job{i}" for i in range(7)])
        for i in range(4):
            await redis.xadd(stream, {"n": str(i)})
        # Five entries, three of them delivered to a consumer and not acknowledged: pending 3.
        await redis.xgroup_create(grouped, "workers", id="0", mkstream=True)
        for i in range(5):
            await redis.xadd(grouped, {"n": str(i)})
        await redis.xreadgroup("workers", "worker-1", {grouped: ">"}, count=3)
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            wanted = {"batch/list-worker": 7, "batch/stream-worker": 4, "batch/group-worker": 3}
            for _ in range(300):
                if daemon.actuator.replicas == wanted:
                    break
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
            assert daemon.actuator.replicas == wanted
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=30)
            await redis.delete(jobs, stream, grouped)
            await redis.aclose()

    asyncio.run(scenario())


def test_a_queue_needs_a_redis_url() -> None:
    with pytest.raises(ValidationError, match=r"redis_queues\[0\]\.url"):
        DaemonConfig(redis_queues=(RedisQueueConfig(deployment="batch/a", key="jobs"),))
