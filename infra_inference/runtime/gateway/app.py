"""The gateway's routes: a reverse proxy for every method and path; health, metrics and the activator on the admin port.

It answers through the model server's HTTP/1.1 protocol (`transport/http1.py`),
not ASGI: the hop is paid on every request, and ASGI's scope and message
dicts and its task per request cost more than queueing and dispatching do.
A proxied request takes one task (waiting for a slot, then for the replica,
then relaying its answer while that streams).

The service port carries the service's own routes only, every one of them
(`GET /v1/models`, `POST /v1/chat/completions`, `GET /v2/models/m/ready`, ...),
with the request's end-to-end headers; the gateway's `/healthz`, `/readyz`,
`/metrics` and the activator's long-poll are on the admin port, where
clients of the service cannot reach them (the Service exposes only the
service port). A replica's answer comes back with its headers, minus
hop-by-hop ones; a streamed answer (chunked, server-sent events) is relayed
event by event as the replica sends it.

Answers the gateway makes itself are JSON `{"error": ...}` with a status that
says what happened, so nothing accepted ends without an answer:
429 the queue is full (Retry-After), 504 no answer within `timeout_s`,
502 a replica failed before answering and so did the retry on another.
A retry happens only while nothing of the answer has reached the client. A
stream the replica breaks off ends the client's stream with an error: an
`error` event for server-sent events, then the connection closes without the
last chunk, so no client mistakes it for a complete answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

import orjson

from infra_inference.runtime.discovery.base import Discovery
from infra_inference.runtime.gateway.discovery import discovery_for
from infra_inference.runtime.gateway.dispatch import Backend, Dispatcher, QueueFull, Replica
from infra_inference.runtime.gateway.metrics import BackendMetrics, GatewayMetrics
from infra_inference.runtime.gateway.split import WeightedSplit
from infra_inference.runtime.gateway.upstream import Relay, ReplicaFailed, Upstream
from infra_inference.runtime.transport.http1 import JSON, Budget, Reply, Request, Response, error
from infra_inference.wire.gateway import GatewayConfig

log = logging.getLogger(__name__)

_PROMETHEUS = b"content-type: text/plain; version=0.0.4\r\n"
_DEFAULT_CONTENT_TYPE = b"application/json"
# The longest an activator long-poll may hold a connection open.
MAX_ACTIVATOR_WAIT_S = 30.0
# The status a request whose client left while it queued is counted under (nginx's "client closed request").
CLIENT_GONE = 499


def _error(status: int, message: str, extra_headers: bytes = b"") -> Response:
    response = error(status, message)
    return response._replace(headers=response.headers + extra_headers) if extra_headers else response


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
        self.metrics = GatewayMetrics(self.dispatcher, clock, config.service)
        weighted = [b for b in self.dispatcher.backends.values() if not b.config.fallback]
        self._split = WeightedSplit(weighted, [b.config.weight for b in weighted], rng)
        self._sticky = config.sticky_header.lower().encode()
        # The request header the gateway reads; http1 keeps only it (and the lines to forward).
        self.headers = frozenset({self._sticky})
        self._upstream = Upstream(config.timeout_s, clock)
        # Request bodies held, from their headers to their answer (answers past 256 KiB are relayed
        # as they arrive, not held).
        self.budget = Budget(config.max_buffered_bytes)
        self.draining = False  # readiness answers 503 from then on (the gateway server's drain sets it)
        self._pokes: set[asyncio.Future[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: dict[Reply, asyncio.Task[None]] = {}  # requests waiting for a slot, by their reply
        self._discovering: asyncio.Task[None] | None = None

    def respond(self, request: Request, reply: Reply) -> None:
        """Proxy one request of the service port; the answer comes later through ``reply``."""
        self._tasks.add(asyncio.get_running_loop().create_task(self._proxy(request, reply)))

    def forget(self, reply: Reply) -> None:
        """The client of a request went away: if it still waits for a slot, it leaves the queue.

        Otherwise it would hold its place in `max_queue` until `timeout_s` and then take a replica's
        slot for nobody: clients that time out at 10 s and retry, against a 30 s gateway timeout,
        would fill the queue with the requests they gave up on. Once sent, a request runs to its end.
        """
        task = self._queued.pop(reply, None)
        if task is not None:
            task.cancel()

    def respond_admin(self, request: Request, reply: Reply) -> Response | None:
        """The admin port: health, metrics and the activator's long-poll."""
        if request.path == "/activator/wait":
            self._later(self._activator_wait(request.query), reply)
            return None
        if request.path == "/healthz":
            return Response(200, b'{"ok": true}')
        if request.path == "/readyz":
            return Response(503, b'{"ok": false, "draining": true}') if self.draining else Response(200, b'{"ok": true}')
        if request.path == "/metrics":
            return Response(200, self.metrics.render(), _PROMETHEUS)
        return _error(404, f"no {request.method.decode('latin-1')} route {request.path} on the admin port")

    def _later(self, answer: Coroutine[Any, Any, Response], reply: Reply) -> None:
        self._tasks.add(asyncio.get_running_loop().create_task(self._answer_then_reply(answer, reply)))

    async def _answer_then_reply(self, answer: Coroutine[Any, Any, Response], reply: Reply) -> None:
        # The loop holds tasks weakly: each sits in _tasks until it has replied.
        try:
            response = await answer
        except Exception:  # a bug here must still answer, or the client waits forever
            log.exception("answering a request failed")
            response = error(500, "internal server error")
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
        reply(response)

    async def _proxy(self, request: Request, reply: Reply) -> None:
        start = self._clock()
        backend = self._split.pick(request.headers.get(self._sticky))
        metrics = self.metrics.of(backend)
        metrics.arrived()
        status = 500
        try:
            status = await self._forward(backend, metrics, request, reply, start)
        except asyncio.CancelledError:  # forget(): its client left while it queued
            status = CLIENT_GONE
            # Every request is answered once: a half-closed connection closes after it, a lost one drops it.
            reply(_error(CLIENT_GONE, "the client went away while the request queued"))
            raise
        except Exception:  # a bug here must still answer, or the client waits forever
            log.exception("proxying a request failed")
            reply(error(500, "internal server error"))
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            metrics.observe(status, self._clock() - start)

    async def _forward(self, backend: Backend, metrics: BackendMetrics, request: Request, reply: Reply,
                       arrived: float) -> int:
        """Queue for a slot, send; once more on another replica if this one gave no answer or is draining.

        Returns the status answered (after a relayed body has been passed on in full or broken off).
        """
        deadline = arrived + self.config.timeout_s
        failure = ""
        for attempt in (0, 1):
            replica = self.dispatcher.try_acquire(backend)
            if replica is None:
                self._queued[reply] = asyncio.current_task()  # type: ignore[assignment]
                try:
                    replica = await self._wait_for_slot(backend, deadline, retry=attempt > 0)
                finally:
                    self._queued.pop(reply, None)
                if isinstance(replica, Response):
                    reply(replica)
                    return replica.status
            sent = self._clock()
            try:
                answer = await self._upstream.send(replica.address, request.method, request.target, request.forward,
                                                   request.body, max(deadline - self._clock(), 0.001))
                if isinstance(answer, Relay):
                    await self._relay(metrics, replica, answer, reply, sent, arrived)
                    return answer.head.status
            except ReplicaFailed as exc:
                failure = str(exc)
                self.dispatcher.eject(replica)
                continue
            except TimeoutError:
                reply(_error(504, f"no answer from replica {replica.address} within timeout_s="
                                  f"{self.config.timeout_s:g}"))
                return 504
            finally:
                self.dispatcher.release(replica)
            if answer.status == 503 and attempt == 0:  # draining: it never processed the request
                failure = f"{replica.address} is draining"
                self.dispatcher.eject(replica)
                continue
            now = self._clock()
            metrics.served(now - sent)
            metrics.first_token(now - arrived)
            metrics.count_tokens(answer.body)
            reply(answer)
            return answer.status
        reply(_error(502, f"replica failed before answering, twice: {failure}"))
        return 502

    async def _relay(self, metrics: BackendMetrics, replica: Replica, relay: Relay, reply: Reply, sent: float,
                     arrived: float) -> None:
        """Pass a streamed answer on as it arrives; the slot is held until it ends."""
        head = relay.head
        stream = reply(head)  # type: ignore[func-returns-value]  # a Head is answered with its Stream
        failure = await relay.relay(stream)
        now = self._clock()
        if relay.first_body_s is not None:
            metrics.first_token(relay.first_body_s - arrived)
        metrics.served(now - sent)
        metrics.stream_ended(now - arrived, failure is None)
        metrics.count_tokens(relay.usage)
        if failure is not None:
            log.warning("stream from %s ended early: %s", replica.address, failure)
            if b"text/event-stream" in head.headers.lower():
                # OpenAI-style clients raise on an event whose data carries "error".
                stream.write(b"event: error\ndata: " + orjson.dumps(
                    {"error": {"message": f"stream broken off: {failure}", "type": "upstream_error"}}) + b"\n\n")
            stream.abort()

    async def _wait_for_slot(self, backend: Backend, deadline: float, retry: bool) -> Replica | Response:
        try:
            return await self.dispatcher.acquire(backend, deadline - self._clock(), front=retry)
        except QueueFull:
            return _error(429, f"gateway queue full ({self.config.max_queue} waiting); retry later",
                          b"retry-after: 1\r\n")
        except TimeoutError:
            ready = backend.ready(self._clock())
            return _error(504, f"no free replica slot within timeout_s={self.config.timeout_s:g} "
                               f"({ready} ready replicas of {backend.config.deployment})")

    def _poke(self, backend: Backend) -> None:
        """Activator: a request waits for a backend with no replica; wake the autoscaler's long-poll now."""
        self.end_long_polls()

    def start_drain(self) -> bool:
        """Readiness turns 503 (the gateway still answers everything else until it stops); False if it had."""
        if self.draining:
            return False
        self.draining = True
        return True

    def end_long_polls(self) -> None:
        """Answer every activator long-poll now (a poke, or the gateway shutting down)."""
        for waiter in self._pokes:
            if not waiter.done():
                waiter.set_result(None)

    def waiting_for_replicas(self) -> list[str]:
        now = self._clock()
        return [b.config.deployment for b in self.dispatcher.backends.values() if b.queue and b.ready(now) == 0]

    async def _activator_wait(self, query_string: bytes) -> Response:
        """Long-poll for the autoscaler: returns at once if requests wait for replicas, else on the next poke."""
        query = parse_qs(query_string.decode("latin-1"))
        try:
            timeout_s = min(float(query.get("timeout_s", ["10"])[0]), MAX_ACTIVATOR_WAIT_S)
        except ValueError:
            return _error(400, f"timeout_s must be a number of seconds, got {query['timeout_s'][0]!r}")
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
        return Response(200, json.dumps({"poked": bool(waiting), "deployments": waiting}).encode(), JSON)

    async def start(self) -> None:
        """Open the upstream pool and start discovery (the gateway server calls it before listening)."""
        await self._upstream.open()
        self._discovering = asyncio.get_running_loop().create_task(
            self._discovery.run(self.dispatcher.set_replicas))

    async def stop(self) -> None:
        """After the last answer: stop discovery and close the upstream connections."""
        if self._discovering is not None:
            self._discovering.cancel()
        await self._upstream.close()
