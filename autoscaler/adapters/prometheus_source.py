"""A PromQL query's value as a deployment's named signal, like KEDA's prometheus scaler.

Every ``interval_s`` each configured instant query is run; a result of exactly one series (or a
scalar) with a finite value in the event range becomes a ``signal`` event for its deployment and
goes through the same engine as every other event, where the ``metric`` policy scales on it.
Anything else is counted in ``autoscaler_prometheus_errors_total{reason}`` and logged, never
raised: ``unreachable`` (connection refused, timeout), ``query_failed`` (Prometheus refused the
query, e.g. bad PromQL, or answered something that is not its API), ``empty`` (no series),
``multiple_series`` and ``bad_value`` (NaN, infinite, negative, too large, or not a number).
Unlike KEDA's ``ignoreNullValues`` default, an empty result is not read as 0: a typo in a label
would otherwise scale a deployment to zero. Write ``sum(...) or vector(0)`` where absence does
mean zero. A deployment without a reading keeps its last one until the tracker's signal TTL
(60 s), after which the ``metric`` policy holds its replicas.

prometheus-api-client is a blocking (``requests``) client: its calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import requests
import structlog
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from autoscaler.adapters.polling import poll_until_stopped
from autoscaler.core.events import Event, Signal
from autoscaler.daemon.config import PrometheusQueryConfig
from autoscaler.daemon.ports import EventSink

log = structlog.get_logger("autoscaler.source.prometheus")

ErrorReason = Literal["unreachable", "query_failed", "empty", "multiple_series", "bad_value"]

TIMEOUT_S = 3
"""Per request, as KEDA's default HTTP timeout: a hung Prometheus must not stall the polls."""
MAX_VALUE = 1e9
"""The largest value a ``signal`` event carries (its ``Count`` bound)."""


class UnusableResult(Exception):
    def __init__(self, reason: ErrorReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: ErrorReason = reason


@dataclass(frozen=True, slots=True)
class _Query:
    config: PrometheusQueryConfig
    client: PrometheusConnect


def value_of(result: Any) -> float:
    """The single value of an instant query's ``data.result``, or ``UnusableResult``.

    The client returns only ``data.result``, without its ``resultType``: a vector is a list of
    ``{"metric": ..., "value": [ts, "v"]}``, a scalar is ``[ts, "v"]`` itself."""
    if not isinstance(result, list):
        raise UnusableResult("bad_value", f"unexpected result {result!r:.200}")
    if len(result) == 2 and isinstance(result[0], int | float) and isinstance(result[1], str):
        text = result[1]  # a scalar (or a string, which float() refuses below)
    elif not result:
        raise UnusableResult("empty", "the query returned no series")
    elif len(result) > 1:
        raise UnusableResult(
            "multiple_series",
            f"the query returned {len(result)} series; aggregate them (sum, max, ...)",
        )
    else:
        sample = result[0].get("value") if isinstance(result[0], dict) else None
        if not (isinstance(sample, list) and len(sample) == 2):
            # A range vector (``x[5m]``) has "values", not "value": not an instant reading.
            raise UnusableResult("bad_value", f"not an instant vector: {result[0]!r:.200}")
        text = sample[1]
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UnusableResult("bad_value", f"not a number: {text!r:.100}") from None
    # Prometheus writes NaN and +Inf/-Inf as strings that float() accepts.
    if not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
        raise UnusableResult("bad_value", f"value {text} is not in [0, {MAX_VALUE:g}]")
    return value


def _read(client: PrometheusConnect, query: str) -> float:
    """One blocking query; every failure becomes ``UnusableResult`` with its reason."""
    try:
        result = client.custom_query(query)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise UnusableResult("unreachable", str(exc)) from None
    except PrometheusApiClientException as exc:
        # A non-200 answer: Prometheus says why (bad_data for a PromQL syntax error, ...).
        raise UnusableResult("query_failed", str(exc)) from None
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        # A 200 that is not the query API's JSON (a proxy's login page, a wrong path).
        raise UnusableResult("query_failed", f"{type(exc).__name__}: {exc}") from None
    return value_of(result)


class PrometheusSource:
    def __init__(
        self,
        sink: EventSink,
        queries: Sequence[PrometheusQueryConfig],
        default_url: str | None,
        interval_s: float,
    ) -> None:
        self.sink = sink
        self.interval_s = interval_s
        self._queries: list[_Query] = []
        for query in queries:
            url = query.url or default_url
            if url is None:  # DaemonConfig validation makes this unreachable
                raise ValueError(f"no Prometheus URL for query {query.query!r}")
            # One client (one requests session) per query: the queries of a poll run in
            # parallel threads, and a session is not meant to be shared between threads. No
            # retries inside a poll (the client's default sleeps seconds between three): the
            # next poll is the retry, and the reading already in hand lasts until then.
            client = PrometheusConnect(url=url.rstrip("/"), retry=Retry(total=0), timeout=TIMEOUT_S)
            self._queries.append(_Query(query, client))

    async def _poll(self, query: _Query) -> float | None:
        config = query.config
        try:
            return await asyncio.to_thread(_read, query.client, config.query)
        except UnusableResult as exc:
            self.sink.metrics.prometheus_errors.labels(exc.reason).inc()
            log.warning(
                "prometheus reading unusable",
                reason=exc.reason,
                deployment=config.deployment,
                signal=config.signal,
                query=config.query,
                error=str(exc),
            )
            return None

    async def poll_once(self) -> None:
        now = self.sink.clock()
        values = await asyncio.gather(*(self._poll(query) for query in self._queries))
        events: list[Event] = [
            Signal(deployment=q.config.deployment, ts=now, name=q.config.signal, value=value)
            for q, value in zip(self._queries, values, strict=True)
            if value is not None
        ]
        if events:
            await self.sink.deliver(events, now)
            # A reading changes no load, so it never makes a deployment pending; but a policy
            # driven by it (``metric``) should act on it now, not at the next tick.
            for name in {event.deployment for event in events}:
                await self.sink.decide(name)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await poll_until_stopped(stop, self.interval_s, self.poll_once)
        finally:
            for query in self._queries:
                query.client.close()
