"""Waiting in a many-server queue: how many slots keep the share of late requests in budget.

A deployment of ``c`` replicas with ``p`` slots each is, to its requests, one FIFO queue in
front of ``k = c x p`` servers (the simulator and a load balancer that fills the least busy
replica both behave so). With Poisson arrivals at rate ``lambda`` and mean service ``S`` the
offered load is ``a = lambda x S`` busy slots, and for M/M/k

    P(wait > 0) = C(k, a)                     (Erlang C)
    P(wait > t) = C(k, a) x exp(-(k - a) t / S)

For general arrivals and service times (G/G/k) the standard two-moment correction
(Allen-Cunneen; Kingman for one server) stretches the waiting time by ``(ca2 + scv) / 2``, where
``scv`` is the squared coefficient of variation of the service time and ``ca2`` that of the
inter-arrival times (1 for Poisson; bursty traffic has more). With Poisson arrivals,
deterministic service (scv 0) waits half as long as exponential, heavy-tailed LLM generation
(scv 2-4) one and a half to two and a half times as long. The probability of waiting is kept
at Erlang C's, which the same literature finds insensitive to the service distribution.
Erlang C itself comes from the numerically stable Erlang B recursion; above ``EXACT_UP_TO``
busy slots, where that loop would cost more than it tells, the Halfin-Whitt limit
(square-root staffing) takes over.
"""

from __future__ import annotations

import math

EXACT_UP_TO = 400.0
"""Offered loads (busy slots) up to which Erlang C is computed exactly."""


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits, for ``servers`` servers and ``offered`` Erlangs."""
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return 1.0
    if offered > EXACT_UP_TO:
        return _halfin_whitt(servers, offered)
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return _c_from_b(servers, offered, blocking)


def wait_tail(
    servers: int,
    offered: float,
    service_s: float,
    scv: float,
    wait_s: float,
    arrival_scv: float = 1.0,
) -> float:
    """P(wait > ``wait_s``) in G/G/k by the two-moment correction (1 when unstable)."""
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return 1.0
    stretch = _stretch(service_s, scv, arrival_scv)
    return _tail(erlang_c(servers, offered), servers, offered, stretch, wait_s)


def replicas_needed(
    offered: float,
    parallelism: int,
    service_s: float,
    scv: float,
    wait_s: float,
    budget: float,
    cap: int,
    arrival_scv: float = 1.0,
) -> tuple[int, float]:
    """The fewest replicas (``parallelism`` slots each, at most ``cap``) whose predicted share
    of requests waiting longer than ``wait_s`` is within ``budget``, and that share. At ``cap``
    the share may exceed the budget: more replicas are not allowed."""
    if offered <= 0:
        return 0, 0.0
    stretch = _stretch(service_s, scv, arrival_scv)
    first = max(1, math.floor(offered / parallelism))
    if offered > EXACT_UP_TO:
        for c in range(first, cap + 1):
            k = c * parallelism
            if k > offered:
                miss = _tail(_halfin_whitt(k, offered), k, offered, stretch, wait_s)
                if miss <= budget:
                    return c, miss
        return cap, wait_tail(cap * parallelism, offered, service_s, scv, wait_s, arrival_scv)
    # One pass of the Erlang B recursion, checked at each whole replica.
    blocking = 1.0
    k = 0
    miss = 1.0
    for c in range(1, max(cap, 1) + 1):
        while k < c * parallelism:
            k += 1
            blocking = offered * blocking / (k + offered * blocking)
        if c < first or k <= offered:
            continue
        miss = _tail(_c_from_b(k, offered, blocking), k, offered, stretch, wait_s)
        if miss <= budget:
            return c, miss
    return max(cap, 1), miss


def _c_from_b(servers: int, offered: float, blocking: float) -> float:
    rho = offered / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


def _stretch(service_s: float, scv: float, arrival_scv: float) -> float:
    """The time scale of the waiting-time tail: the mean service time stretched by the
    Allen-Cunneen factor (arrival scv + service scv) / 2."""
    return max(service_s, 1e-9) * max(arrival_scv + scv, 1e-9) / 2.0


def _tail(p_wait: float, servers: int, offered: float, stretch: float, wait_s: float) -> float:
    return p_wait * math.exp(-(servers - offered) * wait_s / stretch)


def _halfin_whitt(servers: int, offered: float) -> float:
    beta = (servers - offered) / math.sqrt(offered)
    cdf = 0.5 * (1.0 + math.erf(beta / math.sqrt(2.0)))
    pdf = math.exp(-beta * beta / 2.0) / math.sqrt(2.0 * math.pi)
    if pdf <= 0.0:
        return 0.0  # beta beyond ~38 standard deviations: nobody waits
    return 1.0 / (1.0 + beta * cdf / pdf)
