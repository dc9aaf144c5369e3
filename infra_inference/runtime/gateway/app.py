"""The gateway's ASGI app: every POST is proxied through the queue; GETs are health, metrics, activator.

Answers the gateway makes itself are JSON `{"error": ...}` with a status that
says what happened, so nothing accepted ends without an answer:
429 the queue is full (Retry-After), 504 no answer within `timeout_s`,
502 a replica failed before answering and so did the retry on another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from infra_inference.runtime.gateway.config import GatewayConfig
from infra_inference.runtime.gateway.discovery import Discovery, discovery_for
from infra_inference.runtime.gateway.dispatch import Backend, Dispatcher, QueueFull, Replica
from infra_inference.runtime.gateway.metrics import GatewayMetrics
from infra_inference.runtime.gateway.split import WeightedSplit
from infra_inference.runtime.gateway.upstream import Answer, ReplicaFailed, Upstream

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
# The longest an activator long-poll may hold a connection open.
MAX_ACTIVATOR_WAIT_S = 30.0


def _error(status: int, message: str, *extra: tuple[bytes, bytes]) -> Answer:
    return Answer(status, json.dumps({"error": message}).encode(), [*_JSON, *extra])


class GatewayApp:
    """One service's entry point.

    Args:
        config: Backends, queue limits, discovery.
        discovery: Overrides the one `config` names (tests).
        clock: Monotonic seconds.
        rng: For the weighted split (tests seed it).
    """

    def __init__(self, config: GatewayConfig, discovery: Discovery | None = None,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.config = config
        self._clock = clock
        self._discovery = discovery or discovery_for(config)
        self.dispatcher = Dispatcher(config.backends, config.max_queue, clock, self._poke)
        self.metrics = GatewayMetrics(self.dispatcher, clock)
        weighted = [b for b in self.dispatcher.backends.values() if not b.config.fallback]
        self._split = WeightedSplit(weighted, [b.config.weight for b in weighted], rng)
        self._sticky = config.sticky_header.lower().encode()
        self._upstream = Upstream()
        self._pokes: set[asyncio.Future[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            answer = await self._proxy(scope, receive)
        elif scope["path"] == "/activator/wait":
            answer = await self._activator_wait(scope)
        else:
            answer = self._get(scope["path"])
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())]})
        await send({"type": "http.response.body", "body": answer.body})

    def _get(self, path: str) -> Answer:
        if path in ("/healthz", "/readyz"):
            return Answer(200, b'{"ok": true}', _JSON)
        if path == "/metrics":
            return Answer(200, self.metrics.render(), [(b"content-type", b"text/plain; version=0.0.4")])
        return _error(404, f"no GET route {path}")

    async def _proxy(self, scope: Scope, receive: Receive) -> Answer:
        start = self._clock()
        headers = dict(scope["headers"])
        backend = self._split.pick(headers.get(self._sticky))
        self.metrics.arrived(backend)
        path = scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        body = await _read_body(receive)
        answer = await self._forward(backend, path, body, headers.get(b"content-type", b"application/json").decode(),
                                     start + self.config.timeout_s)
        self.metrics.observe(backend, answer.status, self._clock() - start)
        return answer

    async def _forward(self, backend: Backend, path: str, body: bytes, content_type: str, deadline: float) -> Answer:
        """Queue for a slot, send; once more on another replica if this one gave no answer or is draining."""
        failure = ""
        for attempt in (0, 1):
            replica = self.dispatcher.try_acquire(backend)
            if replica is None:
                replica = await self._wait_for_slot(backend, deadline, retry=attempt > 0)
                if isinstance(replica, Answer):
                    return replica
            sent = self._clock()
            try:
                answer = await self._upstream.post(replica.address, path, body, content_type,
                                                   max(deadline - self._clock(), 0.001))
            except ReplicaFailed as exc:
                failure = str(exc)
                self.dispatcher.eject(replica)
                continue
            except TimeoutError:
                return _error(504, f"no answer from replica {replica.address} within timeout_s="
                                   f"{self.config.timeout_s:g}")
            finally:
                self.dispatcher.release(replica)
            if answer.status == 503 and attempt == 0:  # draining: it never processed the request
                failure = f"{replica.address} is draining"
                self.dispatcher.eject(replica)
                continue
            self.metrics.served(backend, self._clock() - sent)
            return answer
        return _error(502, f"replica failed before answering, twice: {failure}")

    async def _wait_for_slot(self, backend: Backend, deadline: float, retry: bool) -> Replica | Answer:
        try:
            return await self.dispatcher.acquire(backend, deadline - self._clock(), front=retry)
        except QueueFull:
            return _error(429, f"gateway queue full ({self.config.max_queue} waiting); retry later",
                          (b"retry-after", b"1"))
        except TimeoutError:
            ready = backend.ready(self._clock())
            return _error(504, f"no free replica slot within timeout_s={self.config.timeout_s:g} "
                               f"({ready} ready replicas of {backend.config.deployment})")

    def _poke(self, backend: Backend) -> None:
        """Activator: a request waits for a backend with no replica; wake the autoscaler's long-poll now."""
        for waiter in self._pokes:
            if not waiter.done():
                waiter.set_result(None)

    def waiting_for_replicas(self) -> list[str]:
        now = self._clock()
        return [b.config.deployment for b in self.dispatcher.backends.values() if b.queue and b.ready(now) == 0]

    async def _activator_wait(self, scope: Scope) -> Answer:
        """Long-poll for the autoscaler: returns at once if requests wait for replicas, else on the next poke."""
        query = parse_qs(scope["query_string"].decode())
        timeout_s = min(float(query.get("timeout_s", ["10"])[0]), MAX_ACTIVATOR_WAIT_S)
        if not self.waiting_for_replicas():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pokes.add(waiter)
            try:
                await asyncio.wait_for(waiter, timeout_s)
            except TimeoutError:
                pass
            finally:
                self._pokes.discard(waiter)
        waiting = self.waiting_for_replicas()
        return Answer(200, json.dumps({"poked": bool(waiting), "deployments": waiting}).encode(), _JSON)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._upstream.open()
                self._tasks.append(asyncio.create_task(self._discovery.run(self.dispatcher.set_replicas)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                await self._upstream.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
