"""Collect: one reading per deployment per tick, from the gateway, the replicas or Prometheus.

The gateway sees everything accepted and not yet answered, including
requests queued while no replica exists, so it is the source for
concurrency, throughput and latency, and for "outstanding" whatever the
metric. Concurrency is Little's law on the gateway's counters (arrival rate x
service time, plus the queue as work: `backlog_s`), not the queue as it
stands: a queue that builds during a cold start would otherwise read as
several times the replicas the arrivals need. Utilization is only known on
replicas; custom comes from a PromQL query. Anything unreadable becomes None,
and the decider holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from infra_inference.decide.autoscaling import littles_law
from infra_inference.runtime.metrics import prom
from infra_inference.specs.autoscale import Metric
from infra_inference.wire import metrics as names

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
GATEWAY_METRICS: tuple[Metric, ...] = ("concurrency", "throughput", "latency")


@dataclass(frozen=True)
class Reading:
    at: float
    value: float | None
    outstanding: float | None
    backlog_s: float | None = None
    queue_only: bool = False  # value is the outstanding count: no service time known yet


@dataclass(frozen=True)
class _Counters:
    """Cumulative counters of one scrape, summed over gateways, for rates between two scrapes."""

    at: float
    requests: float
    arrivals: float
    served: float
    served_s: float
    buckets: dict[float, float]

    @classmethod
    def scrape(cls, gateway: list[prom.Samples], deployment: str, at: float,
               latency_histogram: str = names.REQUEST_DURATION) -> _Counters:
        def total(name: str) -> float:
            return sum(prom.total(s, name, deployment=deployment) for s in gateway)

        merged: dict[float, float] = {}
        for s in gateway:
            for le, c in prom.buckets(s, latency_histogram, deployment=deployment).items():
                merged[le] = merged.get(le, 0.0) + c
        return cls(at, total(names.REQUESTS_TOTAL), total(names.ARRIVALS_TOTAL),
                   total(f"{names.REPLICA_DURATION}_count"),
                   total(f"{names.REPLICA_DURATION}_sum"), merged)

    def since(self, previous: _Counters | None) -> _Counters | None:
        """The increase since `previous`, its `at` the seconds between the two scrapes.

        None on the first look, or after a gateway restarted (its counters reset).
        """
        if previous is None or self.at <= previous.at or self.requests < previous.requests \
                or self.arrivals < previous.arrivals or self.served < previous.served:
            return None
        return _Counters(self.at - previous.at, self.requests - previous.requests,
                         self.arrivals - previous.arrivals, self.served - previous.served,
                         self.served_s - previous.served_s,
                         {le: c - previous.buckets.get(le, 0.0) for le, c in self.buckets.items()})


async def fetch_text(session: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)) as r:
            return await r.text() if r.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.debug("scrape %s: %s", url, exc)
        return None


async def scrape_all(session: aiohttp.ClientSession, urls: list[str]) -> list[prom.Samples] | None:
    """Every URL's samples, or None when any is unreachable (a partial sum would under-count demand)."""
    texts = await asyncio.gather(*(fetch_text(session, u) for u in urls))
    if not urls or any(t is None for t in texts):
        return None
    return [prom.parse(t) for t in texts if t is not None]


class Collector:
    """Readings for `metric`.

    Args:
        metric: What to read.
        session: Shared HTTP client.
        gateways: Base URLs of the service's gateway replicas right now.
        replicas: Base URLs of a deployment's ready replicas right now.
        custom_query: For metric 'custom': reads a deployment's value (None when unavailable).
        latency_histogram: For metric 'latency': the gateway histogram whose p95 it is (request
            duration, or time to first token).
    """

    def __init__(self, metric: Metric, session: aiohttp.ClientSession, gateways: Callable[[], list[str]],
                 replicas: Callable[[str], list[str]],
                 custom_query: Callable[[str], Awaitable[float | None]] | None = None,
                 latency_histogram: str = names.REQUEST_DURATION) -> None:
        self._metric = metric
        self._latency_histogram = latency_histogram
        self._session = session
        self._gateways = gateways
        self._replicas = replicas
        self._custom = custom_query
        self._previous: dict[str, _Counters] = {}
        self._previous_cpu: dict[str, tuple[float, float]] = {}

    async def read(self, deployments: list[str], now: float) -> dict[str, Reading]:
        gateway = await scrape_all(self._session, [f"{g}/metrics" for g in self._gateways()])
        out = {}
        for d in deployments:
            if gateway is None:  # what only the gateway knows is unknown; utilization and custom are not
                value = None if self._metric in GATEWAY_METRICS else await self._value(d, None, now)
                out[d] = Reading(now, value, None)
                continue
            queued = sum(prom.total(s, names.QUEUE_DEPTH, deployment=d) for s in gateway)
            outstanding = queued + sum(prom.total(s, names.INFLIGHT_REQUESTS, deployment=d)
                                       for s in gateway)
            counters = _Counters.scrape(gateway, d, now, self._latency_histogram)
            delta = counters.since(self._previous.get(d))
            self._previous[d] = counters
            if self._metric == "concurrency":
                out[d] = _littles_law(now, counters, delta, queued, outstanding)
            else:
                out[d] = Reading(now, await self._value(d, delta, now), outstanding)
        return out

    async def _value(self, deployment: str, delta: _Counters | None, now: float) -> float | None:
        if self._metric == "throughput":
            return None if delta is None else delta.requests / delta.at
        if self._metric == "latency":
            p95 = None if delta is None else prom.quantile(0.95, delta.buckets)
            return None if p95 is None else p95 * 1000.0
        if self._metric == "custom":
            return await self._custom(deployment) if self._custom else None
        return await self._utilization(deployment, now)

    async def _utilization(self, deployment: str, now: float) -> float | None:
        """Mean over ready replicas, in percent: GPU busy ratio, or CPU seconds per second (one core = 100 %)."""
        urls = self._replicas(deployment)
        replicas = await scrape_all(self._session, [f"{u}/metrics" for u in urls])
        if not replicas:
            return None
        if self._metric == "gpu-utilization":
            per_replica = [prom.total(s, names.GPU_UTILIZATION) /
                           max(1, len(s.get(names.GPU_UTILIZATION, []))) for s in replicas
                           if names.GPU_UTILIZATION in s]
            return 100.0 * sum(per_replica) / len(per_replica) if per_replica else None
        rates = []
        for url, s in zip(urls, replicas, strict=True):
            cpu = prom.total(s, names.PROCESS_CPU_TOTAL)
            before = self._previous_cpu.get(url)
            self._previous_cpu[url] = (now, cpu)
            if before is not None and now > before[0] and cpu >= before[1]:
                rates.append((cpu - before[1]) / (now - before[0]))
        return 100.0 * sum(rates) / len(rates) if rates else None


def _littles_law(now: float, counters: _Counters, delta: _Counters | None, queued: float,
                 outstanding: float) -> Reading:
    """Arrival rate x service time, and the queue as work; the requests outstanding until both are known.

    The service time is this tick's
    mean, or the mean since the gateway started when nothing finished this
    tick (the first request after idle); before any request was served, and
    on the first look, there is no rate, and the outstanding count (9 queued
    at a gateway with no replica: 9) is the best reading of demand.
    """
    served, served_s = (delta.served, delta.served_s) if delta and delta.served else \
        (counters.served, counters.served_s)
    if delta is None or not served:
        return Reading(now, outstanding, outstanding, queue_only=True)
    concurrency, backlog_s = littles_law(delta.arrivals, delta.at, served_s / served, queued)
    return Reading(now, concurrency, outstanding, backlog_s)


async def replica_total(session: aiohttp.ClientSession, urls: list[str], metric: str) -> float | None:
    """`metric` summed over the replicas (a service-wide number, as a custom query gives), None if none exports it.

    The decider divides it by the per-replica target: 12 + 4 requests waiting at a target of 2 -> 8 replicas.
    """
    scraped = await scrape_all(session, urls)
    values = [prom.total(s, metric) for s in scraped or [] if metric in s]
    return sum(values) if values else None


async def prometheus_query(session: aiohttp.ClientSession, base_url: str, query: str) -> float | None:
    """One number from the Prometheus HTTP API (`/api/v1/query`, instant vector or scalar)."""
    try:
        async with session.get(f"{base_url.rstrip('/')}/api/v1/query", params={"query": query},
                               timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)) as r:
            doc = await r.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        log.warning("prometheus query failed: %s", exc)
        return None
    data = doc.get("data", {}) if doc.get("status") == "success" else {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and result:
        return float(result[1])
    if data.get("resultType") == "vector" and result:
        return sum(float(r["value"][1]) for r in result)
    return None
