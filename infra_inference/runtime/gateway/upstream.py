"""The hop to a replica: HTTP/1.1 over pooled keep-alive connections, an asyncio protocol on httptools.

Why not aiohttp: the gateway's CPU per request is the hop's price, and
aiohttp's client (request and response objects, header multidicts, layered
stream readers) was most of it. The gateway on uvicorn with aiohttp took
734 us of CPU per request at one in flight; on http1 with this client it
takes 193 us, against 89 us for a relay that only copies bytes
(benchmarks/gateway_hop.py, same run). The gateway only ever sends a POST
with a body and reads a status, two headers and a body back, which is what
this module does.

Connections are kept per replica and reused in LIFO order (the warmest one
first). A reused connection that fails before any byte of an answer has
arrived was most likely closed by the replica's keep-alive timeout while
idle; the request is sent once more on a fresh connection to the same
replica, so that a race with an idle close never ejects a healthy replica.
"""

from __future__ import annotations

import asyncio

import httptools

from infra_inference.runtime.transport.http1 import Response

# Headers a replica's answer keeps on its way back through the gateway.
_PASSED_BACK = (b"content-type", b"retry-after")


class ReplicaFailed(Exception):
    """The replica gave no answer: connection refused, reset or closed before a response."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a replica, answering one request at a time."""

    def __init__(self, pool: list[_Connection]) -> None:
        self._pool = pool  # the idle connections of this replica; we join it after each answer
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Response] | None = None
        self.received = False  # some byte of the current answer arrived
        self._headers: list[bytes] = []  # the passed-back header lines, as the gateway writes them
        self._body: list[bytes] = []
        self._length_known = False  # content-length or chunked; else the body ends at EOF

    def request(self, data: bytes, answer: asyncio.Future[Response]) -> None:
        assert self.transport is not None and self._answer is None, "one request at a time"
        self._answer = answer
        self.received = False
        self._headers = []
        self._body = []
        self._length_known = False
        self.transport.write(data)

    def abort(self) -> None:
        """Give up on the current answer (timed out): the connection is out of step, close it."""
        self._answer = None
        if self.transport is not None:
            self.transport.abort()

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
        if self._answer is None:
            return
        if self.received and not self._length_known and self._parser.get_status_code():
            self._complete()  # a body delimited by the end of the connection
        else:
            self._fail(f"connection closed before a complete answer ({exc or 'EOF'})")

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in _PASSED_BACK:
            self._headers.append(b"%s: %s\r\n" % (name, value))
        elif name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._length_known = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        expected = self._answer is not None  # else an answer nobody asked for: the connection is out of step
        self._complete()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if expected and self._parser.should_keep_alive():
            self._pool.append(self)
        else:
            transport.close()

    def _complete(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            answer.set_result(Response(self._parser.get_status_code(), body, b"".join(self._headers)))

    def _fail(self, why: str) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(ReplicaFailed(why))


class Upstream:
    """POSTs to replicas over pooled connections; opened and closed with the gateway."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Connection]] = {}
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
        for pool in self._idle.values():
            for connection in list(pool):
                connection.abort()
        self._idle.clear()

    async def post(self, address: str, target: bytes, body: bytes, content_type: bytes, timeout_s: float) -> Response:
        """The replica's answer.

        Raises:
            ReplicaFailed: No answer came (safe to send the request to another replica).
            TimeoutError: The answer did not come within `timeout_s`.
        """
        assert self._open, "Upstream.open() first"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        data = b"".join((
            b"POST ", target, b" HTTP/1.1\r\nhost: ", address.encode(), b"\r\ncontent-type: ",
            content_type, b"\r\ncontent-length: %d\r\n\r\n" % len(body), body,
        ))
        pool = self._idle.setdefault(address, [])
        while True:
            connection = _warmest(pool)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(address, pool, deadline - loop.time())
            try:
                return await self._exchange(connection, data, deadline)
            except ReplicaFailed:
                if reused and not connection.received:
                    continue  # closed while idle, most likely: once more on a fresh connection
                raise

    async def _connect(self, address: str, pool: list[_Connection], timeout_s: float) -> _Connection:
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, connection = await loop.create_connection(lambda: _Connection(pool), host.strip("[]"), int(port))
        except TimeoutError:
            raise  # the request's own deadline passed while connecting: 504, not another replica
        except OSError as exc:
            raise ReplicaFailed(f"{address}: {type(exc).__name__}: {exc}") from exc
        return connection

    async def _exchange(self, connection: _Connection, data: bytes, deadline: float) -> Response:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Response] = loop.create_future()
        connection.request(data, answer)
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


def _expire(connection: _Connection, answer: asyncio.Future[Response]) -> None:
    if not answer.done():
        connection.abort()
        answer.set_exception(TimeoutError())
