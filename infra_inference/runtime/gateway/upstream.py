"""The hop to a replica: HTTP/1.1 over pooled keep-alive connections, an asyncio protocol on httptools.

Why not aiohttp: the gateway's CPU per request is the hop's price, and
aiohttp's client (request and response objects, header multidicts, layered
stream readers) was most of it. The gateway on uvicorn with aiohttp took
734 us of CPU per request at one in flight; on http1 with this client it
takes 193 us, against 89 us for a relay that only copies bytes
(benchmarks/gateway_hop.py, same run).

An answer comes back in one of two shapes. A small one with a length
(`content-length` up to `BUFFER_BYTES`: an inference result, a health or
metadata answer) is read whole and returned as a `Response`, the cheap path.
Anything else (chunked: server-sent events, token streams; no length; a large
body) is a `Relay`: its head is returned as soon as it arrives, and its body
is passed to the client's `Stream` chunk by chunk as the replica sends it,
with backpressure both ways (a client that stops reading stops the reads from
the replica), so the first token reaches the client when the replica sends it.

Connections are kept per replica and reused in LIFO order (the warmest one
first). A reused connection that fails before any byte of an answer has
arrived was most likely closed by the replica's keep-alive timeout while
idle; the request is sent once more on a fresh connection to the same
replica, so that a race with an idle close never ejects a healthy replica.

A large request body (a `bytearray` received in place by http1) is written
apart from the request's head, never copied into it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httptools

from infra_inference.runtime.transport.http1 import HOP_BY_HOP, LARGE_BODY_BYTES, Head, Response, Stream, end_to_end

# Answers with a content-length up to this are read whole before the client gets anything
# (one write, no stream bookkeeping); longer ones, and any without a length, are relayed.
BUFFER_BYTES = 256 * 1024
_NO_BODY_METHODS = (b"GET", b"HEAD", b"DELETE", b"OPTIONS")


class ReplicaFailed(Exception):
    """The replica gave no answer: connection refused, reset or closed before a response."""


class Relay:
    """A replica's answer whose body is passed on as it arrives.

    `head` is known; `relay(stream)` passes the body into the client's
    stream and returns None once it is complete, or why it broke off (the
    replica closed or went silent for `idle_s`, or the client went away, in
    which case the request to the replica is cancelled by closing its connection).
    """

    def __init__(self, connection: _Connection, head: Head, clock: Callable[[], float]) -> None:
        self.head = head
        self.first_body_s: float | None = None  # when the first body byte came (time to first token)
        self.usage: bytes | None = None  # the last chunk that carried token usage
        self._clock = clock
        self._connection = connection
        self._pending: list[bytes] = []  # body that arrived before the client's stream was attached
        self._stream: Stream | None = None
        self._done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    async def relay(self, stream: Stream) -> str | None:
        self._stream = stream
        stream.on_pause = self._connection.pause
        stream.on_resume = self._connection.resume
        stream.on_lost = self._client_lost
        if not stream.open:
            self._client_lost()  # gone before the head could be written
        for chunk in self._pending:
            stream.write(chunk)
        self._pending.clear()
        if self._done.done() and self._done.result() is None:
            stream.end()
        return await self._done

    def body(self, chunk: bytes) -> None:
        if self.first_body_s is None:
            self.first_body_s = self._clock()
        if b'"completion_tokens"' in chunk:
            self.usage = chunk
        if self._stream is not None:
            self._stream.write(chunk)
        else:
            self._pending.append(chunk)

    def finish(self, failure: str | None) -> None:
        """The replica's answer ended: complete (None), or broken off with the reason."""
        if self._done.done():
            return
        if failure is None and self._stream is not None:
            self._stream.end()
        self._done.set_result(failure)

    def _client_lost(self) -> None:
        self._connection.abort()
        self.finish("the client went away")


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a replica, answering one request at a time."""

    def __init__(self, pool: list[_Connection], idle_s: float, clock: Callable[[], float]) -> None:
        self._pool = pool  # the idle connections of this replica; we join it after each answer
        self._idle_s = idle_s
        self._clock = clock
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Response | Relay] | None = None
        self._relay: Relay | None = None  # the answer being relayed, once its head has come
        self.received = False  # some byte of the current answer arrived
        self._headers: list[bytes] = []  # the end-to-end header lines
        self._connection_header = b""
        self._content_length = -1
        self._body: list[bytes] = []
        self._length_known = False  # content-length or chunked; else the body ends at EOF
        self._last_data_s = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def request(self, data: bytes, body: bytes | bytearray, answer: asyncio.Future[Response | Relay]) -> None:
        """Send one request: ``data`` (its head, with a small body in it), then a large ``body`` apart."""
        assert self.transport is not None and self._answer is None, "one request at a time"
        self._answer = answer
        self._relay = None
        self.received = False
        self._headers = []
        self._connection_header = b""
        self._content_length = -1
        self._body = []
        self._length_known = False
        self.transport.write(data)
        if body:
            self.transport.write(body)

    def abort(self) -> None:
        """Give up on the current answer (timed out, or its client went away): close the connection."""
        self._answer = None
        if self.transport is not None:
            self.transport.abort()

    def pause(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._last_data_s = asyncio.get_running_loop().time()  # the client was slow, not the replica

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed answer: {exc}")
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self._pool:
            self._pool.remove(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        relay, self._relay = self._relay, None
        if relay is not None:
            ended = not self._length_known  # a body delimited by the end of the connection
            relay.finish(None if ended else f"the replica closed the connection mid-answer ({exc or 'EOF'})")
            return
        if self._answer is None:
            return
        if self.received and not self._length_known and self._parser.get_status_code():
            self._complete()  # a body delimited by the end of the connection
        else:
            self._fail(f"connection closed before a complete answer ({exc or 'EOF'})")

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name not in HOP_BY_HOP:
            self._headers.append(b"%s: %s\r\n" % (name, value))
        elif name == b"content-length":
            self._length_known = True
            if value.isdigit():
                self._content_length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            self._length_known = True
        elif name == b"connection":
            self._connection_header += b"," + value.lower()

    def on_headers_complete(self) -> None:
        if 0 <= self._content_length <= BUFFER_BYTES or self._answer is None:
            return  # read it whole
        status = self._parser.get_status_code()
        if status in (204, 304):
            return
        self._relay = relay = Relay(self, Head(status, end_to_end(self._headers, self._connection_header),
                                               self._content_length), self._clock)
        answer, self._answer = self._answer, None
        if not answer.done():
            answer.set_result(relay)
        loop = asyncio.get_running_loop()
        self._last_data_s = loop.time()
        self._idle_timer = loop.call_later(self._idle_s, self._on_idle_timer)

    def on_body(self, body: bytes) -> None:
        relay = self._relay
        if relay is None:
            self._body.append(body)
        else:
            self._last_data_s = asyncio.get_running_loop().time()
            relay.body(body)

    def on_message_complete(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            relay.finish(None)
            expected = True
        else:
            expected = self._answer is not None  # else an answer nobody asked for: the connection is out of step
            self._complete()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if expected and self._parser.should_keep_alive():
            self._pool.append(self)
        else:
            transport.close()

    def _on_idle_timer(self) -> None:
        # One timer, re-armed from here: a chunk only notes the time it came.
        relay = self._relay
        if relay is None:
            return
        loop = asyncio.get_running_loop()
        delay = self._last_data_s + self._idle_s - loop.time()
        if delay > 0:
            self._idle_timer = loop.call_later(delay, self._on_idle_timer)
            return
        self._relay = None
        relay.finish(f"the replica sent nothing for {self._idle_s:g} s mid-answer")
        self.abort()

    def _complete(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            headers = end_to_end(self._headers, self._connection_header)
            answer.set_result(Response(self._parser.get_status_code(), body, headers))

    def _fail(self, why: str) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(ReplicaFailed(why))


class _Endpoint:
    """One replica's address as the request's host header needs it, and its idle connections."""

    __slots__ = ("address", "host", "idle")

    def __init__(self, address: str) -> None:
        self.address = address
        self.host = b"\r\nhost: " + address.encode() + b"\r\n"  # ends the request line, starts the headers
        self.idle: list[_Connection] = []


class Upstream:
    """Requests to replicas over pooled connections; opened and closed with the gateway.

    Args:
        idle_s: Longest silence from a replica in the middle of a relayed answer.
        clock: Monotonic seconds, for when a relayed body's first byte came.
    """

    def __init__(self, idle_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._idle_s = idle_s
        self._clock = clock
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
        for endpoint in self._endpoints.values():
            for connection in list(endpoint.idle):
                connection.abort()
        self._endpoints.clear()

    async def send(self, address: str, method: bytes, target: bytes, headers: bytes, body: bytes | bytearray,
                   timeout_s: float) -> Response | Relay:
        """The replica's answer: whole, or its head with the body to relay.

        Args:
            headers: End-to-end header lines to forward, each ending in CRLF.
            timeout_s: Until the answer's head (a relayed body then has `idle_s` between chunks).

        Raises:
            ReplicaFailed: No answer came (safe to send the request to another replica).
            TimeoutError: The answer did not come within `timeout_s`.
        """
        assert self._open, "Upstream.open() first"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if method == b"HEAD":
            method = b"GET"  # the parser cannot tell a HEAD answer's missing body; http1 drops the body instead
        length = b"" if not body and method in _NO_BODY_METHODS else b"content-length: %d\r\n" % len(body)
        large = len(body) > LARGE_BODY_BYTES
        endpoint = self._endpoints.get(address) or self._endpoints.setdefault(address, _Endpoint(address))
        data = b"".join((method, b" ", target, b" HTTP/1.1", endpoint.host, headers, length, b"\r\n",
                         b"" if large else body))
        body = body if large else b""  # a large body is written apart from its head, never copied into it
        while True:
            connection = _warmest(endpoint.idle)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(endpoint, deadline - loop.time())
            try:
                return await self._exchange(connection, data, body, deadline)
            except ReplicaFailed:
                if reused and not connection.received:
                    continue  # closed while idle, most likely: once more on a fresh connection
                raise

    async def _connect(self, endpoint: _Endpoint, timeout_s: float) -> _Connection:
        address = endpoint.address
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(endpoint.idle, self._idle_s, self._clock), host.strip("[]"), int(port))
        except TimeoutError:
            raise  # the request's own deadline passed while connecting: 504, not another replica
        except OSError as exc:
            raise ReplicaFailed(f"{address}: {type(exc).__name__}: {exc}") from exc
        return connection

    async def _exchange(self, connection: _Connection, data: bytes, body: bytes | bytearray,
                        deadline: float) -> Response | Relay:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Response | Relay] = loop.create_future()
        connection.request(data, body, answer)
        timer = loop.call_at(deadline, _expire, connection, answer)
        try:
            return await answer
        finally:
            timer.cancel()


def _warmest(pool: list[_Connection]) -> _Connection | None:
    """The most recently used idle connection that is still open, if any."""
    while pool:
        connection = pool.pop()
        if connection.transport is not None and not connection.transport.is_closing():
            return connection
    return None


def _expire(connection: _Connection, answer: asyncio.Future[Response | Relay]) -> None:
    if not answer.done():
        connection.abort()
        answer.set_exception(TimeoutError())
