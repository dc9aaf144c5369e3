"""Collect: the I/O half of a reading. Scrape the gateway, the replicas or Prometheus into plain numbers.

What the numbers mean (counter deltas, service time, Little's law, backlog)
is `decide/autoscaling/observe.py`, pure and shared with the simulator; this
module only fetches and parses, behind the `Source` protocol the tick loop
reads. Anything unreadable is None, per source and per deployment: an
unreachable gateway, a body over MAX_BODY_BYTES, a line the parser rejects.
The decider holds on None; one bad scrape never skips another deployment.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from infra_inference.decide.autoscaling.observe import GatewaySample, ReplicaSample
from infra_inference.runtime.metrics import prom
from infra_inference.wire import metrics as names

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
# A gateway's /metrics is a few KB per deployment; 4 MiB is thousands of deployments. A larger
# body is a broken or hostile endpoint, and parsing it would stall every deployment's tick.
MAX_BODY_BYTES = 4 * 1024 * 1024


class Source(Protocol):
    """Where readings come from: the tick loop's only view of the metrics endpoints."""

    async def gateway(self, deployments: list[str], now: float) -> dict[str, GatewaySample] | None:
        """Each deployment's gateway counters now, summed over gateway replicas; None when unreadable."""

    async def replicas(self, deployment: str) -> dict[str, ReplicaSample] | None:
        """Each ready replica's sample by URL; None when any is unreadable."""

    async def custom(self, deployment: str) -> float | None:
        """The custom metric's value for `deployment`; None when unavailable."""


async def read_capped(r: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None once it passes MAX_BODY_BYTES (read no further)."""
    if (r.content_length or 0) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in r.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


async def fetch_text(session: aiohttp.ClientSession, url: str) -> str | None:
    """The body of a 200 answer, at most MAX_BODY_BYTES; None otherwise."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)) as r:
            body = await read_capped(r) if r.status == 200 else None
            if body is None:
                log.warning("scrape %s: status %d or a body over %d bytes; no reading", url, r.status, MAX_BODY_BYTES)
                return None
            return body.decode("utf-8", "replace")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.debug("scrape %s: %s", url, exc)
        return None


def parse(url: str, text: str) -> prom.Samples | None:
    try:
        return prom.parse(text)
    except ValueError as exc:  # prometheus_client's parser raises ValueError on any malformed line
        log.warning("scrape %s: unparsable metrics (%s); no reading", url, exc)
        return None


async def scrape_all(session: aiohttp.ClientSession, urls: list[str]) -> list[prom.Samples] | None:
    """Every URL's samples, or None when any is unreachable or unparsable (a partial sum would under-count demand)."""
    texts = await asyncio.gather(*(fetch_text(session, u) for u in urls))
    if not urls or any(t is None for t in texts):
        return None
    parsed = [parse(u, t) for u, t in zip(urls, texts, strict=True) if t is not None]
    return None if any(p is None for p in parsed) else [p for p in parsed if p is not None]


def gateway_sample(gateway: list[prom.Samples], deployment: str, at: float,
                   latency_histogram: str = names.REQUEST_DURATION) -> GatewaySample:
    """One deployment's counters and gauges, summed over the gateway replicas' expositions."""
    def total(name: str) -> float:
        return sum(prom.total(s, name, deployment=deployment) for s in gateway)

    merged: dict[float, float] = {}
    for s in gateway:
        for le, c in prom.buckets(s, latency_histogram, deployment=deployment).items():
            merged[le] = merged.get(le, 0.0) + c
    return GatewaySample(at, total(names.REQUESTS_TOTAL), total(names.ARRIVALS_TOTAL),
                         total(f"{names.REPLICA_DURATION}_count"), total(f"{names.REPLICA_DURATION}_sum"),
                         total(names.QUEUE_DEPTH), total(names.INFLIGHT_REQUESTS), merged)


class HttpSource:
    """Readings over HTTP: the gateways' and replicas' /metrics, and a custom query.

    Args:
        session: Shared HTTP client.
        gateways: Base URLs of the service's gateway replicas right now.
        replicas: Base URLs of a deployment's ready replicas right now.
        custom_query: For metric 'custom': reads a deployment's value (None when unavailable).
        latency_histogram: For metric 'latency': the gateway histogram whose p95 it is (request
            duration, or time to first token).
    """

    def __init__(self, session: aiohttp.ClientSession, gateways: Callable[[], list[str]],
                 replicas: Callable[[str], list[str]],
                 custom_query: Callable[[str], Awaitable[float | None]] | None = None,
                 latency_histogram: str = names.REQUEST_DURATION) -> None:
        self._latency_histogram = latency_histogram
        self._session = session
        self._gateways = gateways
        self._replicas = replicas
        self._custom = custom_query

    async def gateway(self, deployments: list[str], now: float) -> dict[str, GatewaySample] | None:
        scraped = await scrape_all(self._session, [f"{g}/metrics" for g in self._gateways()])
        return None if scraped is None else {d: gateway_sample(scraped, d, now, self._latency_histogram)
                                             for d in deployments}

    async def replicas(self, deployment: str) -> dict[str, ReplicaSample] | None:
        urls = self._replicas(deployment)
        scraped = await scrape_all(self._session, [f"{u}/metrics" for u in urls])
        if scraped is None:
            return None
        return {url: ReplicaSample(prom.total(s, names.PROCESS_CPU_TOTAL) if names.PROCESS_CPU_TOTAL in s else None,
                                   tuple(v for _, v in s.get(names.GPU_UTILIZATION, [])))
                for url, s in zip(urls, scraped, strict=True)}

    async def custom(self, deployment: str) -> float | None:
        return await self._custom(deployment) if self._custom else None


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
            body = await read_capped(r)
        if body is None:
            return None
        doc = json.loads(body)
        data = doc.get("data", {}) if doc.get("status") == "success" else {}
        result = data.get("result")
        if data.get("resultType") == "scalar" and result:
            return float(result[1])
        if data.get("resultType") == "vector" and result:
            return sum(float(r["value"][1]) for r in result)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, TypeError, KeyError, IndexError,
            AttributeError) as exc:
        log.warning("prometheus query failed: %s", exc)
    return None
