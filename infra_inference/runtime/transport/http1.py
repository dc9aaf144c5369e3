"""HTTP/1.1 for the model server and the gateway: an asyncio protocol on httptools, no ASGI in between.

At one request in flight a server's cost per request is what decides its
throughput, and uvicorn's ASGI plumbing (scope dicts, message dicts, a
receive/send pair, a task per request) costs more than our whole inference
path. This module does only what the server needs from HTTP/1.1:

- keep-alive, ``Connection: close`` and HTTP/1.0 (keep-alive only when asked);
- request bodies by ``Content-Length`` or chunked (httptools decodes chunks),
  ``Expect: 100-continue``, and a body limit answered with 413;
- pipelining: requests on one connection are answered in order, one handler
  at a time, and reading pauses while a complete request waits its turn or
  the peer is not reading its answers, so a client cannot make it buffer more;
- 400 for malformed HTTP; after it (and after every other refusal) the
  connection answers, discards further input and closes, so the client reads
  the answer instead of a reset;
- bounds on what one client can cost (``Limits``): header bytes and count
  (431), body bytes (413), a header deadline and a body deadline that grows
  with the bytes received (408: one byte every minute cannot hold a
  connection), an idle timeout (which also bounds a peer that stops reading
  its answers),
  open connections (503), and request bytes buffered across all connections
  (503 with Retry-After);
- for draining: the set of open connections, whether any is busy, a shutdown
  that lets each finish the request it is answering, and a bounded wait
  after which the rest are cut (``close_all``).
- streamed answers (``reply(Head(...))`` returns a ``Stream``): chunked, or
  close-delimited for HTTP/1.0 clients, each chunk written as it comes, with
  the client's backpressure passed to the producer and its disconnect
  reported to it;
- for a proxy (``forward_headers``): the request's end-to-end header lines,
  hop-by-hop ones removed (RFC 9110 7.6.1).

The handler gets ``(request, reply)`` and returns a ``Response``, or None
when the answer comes later through ``reply`` (inference, once the model
returns; the gateway, once a replica has answered). A request carries only
the headers its server asked to keep: the model server keeps none, the
gateway one, plus (for the gateway) the lines it forwards. A callback rather than an awaitable: at one request in flight
every task and every extra trip through the event loop shows in req/s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, NamedTuple, overload

import httptools
import orjson

log = logging.getLogger(__name__)

JSON = b"content-type: application/json\r\n"


class Response(NamedTuple):
    """One answer: status, body, and header lines (each ending in CRLF).

    ``content-length``, ``date`` and ``connection`` are added when it is written.
    """

    status: int
    body: bytes | bytearray
    headers: bytes = JSON


class Head(NamedTuple):
    """The start of a streamed answer; ``reply(head)`` returns the ``Stream`` its body is written to.

    ``length`` is the body's size when known (sent as ``content-length``);
    -1 sends it chunked (close-delimited to an HTTP/1.0 client).
    """

    status: int
    headers: bytes = JSON
    length: int = -1


class Request(NamedTuple):
    """One request as a handler sees it."""

    method: bytes
    target: bytes  # as sent: what a proxy forwards
    path: str  # percent-decoded, without the query
    query: bytes  # after the "?", raw; b"" without one
    headers: Mapping[bytes, bytes]  # lower-case names, only those the server keeps
    body: bytes | bytearray  # a bytearray when large (received in place, never joined)
    forward: bytes = b""  # with forward_headers: the end-to-end header lines, each ending in CRLF


# Hop-by-hop headers (RFC 9110 7.6.1), and those a proxy writes itself (framing, host, date): never
# forwarded. Names listed in a message's Connection header are hop-by-hop too (handled where parsed).
HOP_BY_HOP = frozenset({
    b"connection", b"proxy-connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"content-length", b"host", b"expect", b"date",
})


def end_to_end(lines: list[bytes], connection: bytes) -> bytes:
    """The header lines to forward: ``lines`` (already without hop-by-hop names) minus those ``connection`` names.

    A header line is kept as it will be written (``name: value\\r\\n``, name in lower case), so the common
    case, no Connection header, is one join.
    """
    if connection:
        named = {n.strip() for n in connection.split(b",")}
        lines = [line for line in lines if line.split(b":", 1)[0] not in named]
    return b"".join(lines)


class Stream:
    """The body of a streamed answer, written chunk by chunk as the producer has it.

    The producer sets ``on_pause`` / ``on_resume`` (the client stopped / resumed
    reading: stop / resume producing) and ``on_lost`` (the client went away:
    cancel the work); then calls ``write`` per chunk and ``end()`` once, or
    ``abort()`` when its source broke off, which closes the connection without
    the last chunk, so the client sees an incomplete answer rather than a short one.
    """

    def __init__(self, connection: HttpConnection, chunked: bool, head: bool = False) -> None:
        self._connection = connection
        self._chunked = chunked
        self._head = head  # the answer to a HEAD request: its body is not written
        self.on_pause: Callable[[], None] = _nothing
        self.on_resume: Callable[[], None] = _nothing
        self.on_lost: Callable[[], None] = _nothing
        self.open = True  # the client is still there and the stream not ended

    def write(self, chunk: bytes) -> None:
        if not chunk or not self.open or self._head:
            return
        transport = self._connection.transport
        if self._chunked:
            transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
        else:
            transport.write(chunk)

    def end(self) -> None:
        if not self.open:
            return
        self.open = False
        if self._chunked and not self._head:
            self._connection.transport.write(b"0\r\n\r\n")
        self._connection.stream_ended(complete=True)

    def abort(self) -> None:
        if not self.open:
            return
        self.open = False
        self._connection.stream_ended(complete=False)

    def lost(self) -> None:
        if self.open:
            self.open = False
            self.on_lost()


def _nothing() -> None:
    pass


Reply = Callable[[Response], None]
"""Answers the request waiting for a late answer: ``reply(response)``, or ``reply(head)`` returning a ``Stream``."""
Handler = Callable[[Request, Any], Response | None]
_NO_HEADERS: Mapping[bytes, bytes] = MappingProxyType({})

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"  # HTTP/1.0 clients only keep a connection the answer says is kept
_RETRY_AFTER = b"retry-after: 1\r\n"
_MAX_URL_BYTES = 8192
# How long a refused connection keeps reading (and dropping) what the client still sends.
_LINGER_S = 2.0
# Bodies larger than this are received into one buffer of their declared length and written
# apart from their headers: no list of chunks joined at the end (which holds the body twice),
# no copy into the head. Smaller ones arrive in one read, and joining is cheaper than a buffer.
LARGE_BODY_BYTES = 64 * 2**10
# Pending connections the kernel queues before accept (uvicorn's default): a burst
# (the gateway's, or clients' at the gateway) waits there instead of being refused.
_BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class Limits:
    """What clients may cost a server: bytes, time and connections.

    Attributes:
        max_body_bytes: Largest request body; beyond it 413 and close.
        idle_timeout_s: A connection idle this long is closed; also how long a peer may
            leave its answers unread.
        header_timeout_s: Once a request has begun, its request line and headers must be
            complete within this (counted from the read that left them incomplete); beyond
            it 408 and close.
        body_timeout_s: Once the headers are in, the body must arrive within this plus
            one second per ``min_body_bytes_per_s`` received (Apache's mod_reqtimeout
            rule); beyond it 408 and close. E.g. 10 s and 16 KiB/s: a 1 MiB body may take
            74 s, one byte of a promised 100 is cut at 10 s.
        min_body_bytes_per_s: See ``body_timeout_s``.
        max_header_bytes: Request line and headers together; beyond it 431 and close.
        max_headers: Header fields per request (trailers included); beyond it 431 and close.
        max_connections: Open connections; one more is answered 503 and closed.
        max_buffered_bytes: Request bodies held across all connections, from their headers
            until their answer is written; a body that would pass it is refused 503 with
            Retry-After before it is read.
    """

    max_body_bytes: int = 64 * 2**20
    idle_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    min_body_bytes_per_s: int = 16 * 2**10
    max_header_bytes: int = 64 * 2**10
    max_headers: int = 100
    max_connections: int = 1024
    max_buffered_bytes: int = 256 * 2**20


def error(status: int, message: str) -> Response:
    """A JSON error answer, ``{"error": message}``, as every route gives."""
    return Response(status, orjson.dumps({"error": message}))


def _retry_later(status: int, message: str) -> Response:
    return Response(status, orjson.dumps({"error": message}), JSON + _RETRY_AFTER)


class _Date:
    """The ``date`` header line, formatted once per second rather than once per response."""

    second = -1
    line = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return cls.line


class _Request(NamedTuple):
    method: bytes
    url: bytes
    headers: Mapping[bytes, bytes]
    body: bytes
    connection: bytes  # the connection header line to answer with: b"" (HTTP/1.1 default), close or keep-alive
    forward: bytes
    http10: bool
    charge: int  # body bytes counted against max_buffered_bytes until the answer is written


class _Refusal(NamedTuple):
    response: Response


class Budget:
    """Bytes a server holds for requests (and, in the gateway, for replicas' answers), against one limit.

    Args:
        max_bytes: The most held at once; ``take`` beyond it is refused.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held_bytes = 0

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes, or False (holding nothing more) when that would pass ``max_bytes``."""
        if self.held_bytes + size > self.max_bytes:
            return False
        self.held_bytes += size
        return True

    def give(self, size: int) -> None:
        self.held_bytes -= size


class Connections:
    """The open connections of a server, their limits, and the bytes they buffer, for admission and draining.

    Args:
        limits: What each connection, and all of them together, may cost.
        budget: Shared with whatever else holds bytes for the server (the gateway's answers
            from replicas); by default one of ``limits.max_buffered_bytes`` for the bodies alone.
    """

    def __init__(self, limits: Limits, budget: Budget | None = None) -> None:
        self.limits = limits
        self.budget = budget or Budget(limits.max_buffered_bytes)
        self._open: set[HttpConnection] = set()
        self._changed: asyncio.Event | None = None
        self.closing = False  # draining: every answer from now on says Connection: close

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: HttpConnection) -> bool:
        """Register a new connection; False when ``max_connections`` are open already."""
        if len(self._open) >= self.limits.max_connections:
            return False
        self._open.add(connection)
        return True

    def discard(self, connection: HttpConnection) -> None:
        self._open.discard(connection)
        self.notify()

    def notify(self) -> None:
        """A connection closed or went idle; wake whoever waits on that (only while draining)."""
        if self._changed is not None:
            self._changed.set()

    def busy(self) -> bool:
        """Some connection has a request that is not fully answered yet."""
        return any(c.busy for c in self._open)

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds, checked whenever a connection closes or goes idle."""
        if self._changed is None:
            self._changed = asyncio.Event()
        while not done():
            self._changed.clear()
            await self._changed.wait()

    def shutdown(self) -> None:
        """Close idle connections now, busy ones once their current answer is written."""
        self.closing = True
        for connection in list(self._open):
            connection.shutdown()

    def abort(self) -> None:
        """Cut every connection now, answered or not (a drain that ran out of time)."""
        for connection in list(self._open):
            connection.abort()


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests, run the handler, write answers in order.

    Args:
        handler: Answers ``(request, reply)``: a response now, or None and ``reply`` later.
        connections: Where the connection registers itself while open; its ``limits`` apply.
        keep_headers: Lower-case names of the request headers the handler reads.
        forward_headers: Also collect the end-to-end header lines, for a proxy.
        on_gone: Called with the ``reply`` of a request still waiting for its late answer (not yet
            streaming) when the client goes away or half-closes: a proxy stops queueing it for a slot
            nobody will use.
    """

    def __init__(self, handler: Handler, connections: Connections, keep_headers: frozenset[bytes] = frozenset(),
                 forward_headers: bool = False, on_gone: Callable[[Reply], None] | None = None) -> None:
        self._handler = handler
        self._on_gone = on_gone
        self._keep_headers = keep_headers
        self._forward_headers = forward_headers
        self._connections = connections
        self._limits = limits = connections.limits
        self._max_headers = limits.max_headers  # read per header field: one attribute, not two
        self._max_header_bytes = limits.max_header_bytes
        self._budget = connections.budget
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self._parser = httptools.HttpRequestParser(self)
        self._pipeline: deque[_Request | _Refusal] = deque()
        self._waiting: _Request | None = None  # the request whose answer will come through reply
        self._stream: Stream | None = None  # the streamed answer being written, if any
        self._idle_timer: asyncio.TimerHandle | None = None
        # When the connection last became idle; None while a body arrives or an answer is due.
        self._idle_since: float | None = None
        self._paused_since: float | None = None  # when the peer stopped reading its answers
        self._body_timer: asyncio.TimerHandle | None = None  # armed while a request's head or body spans reads
        self._head_deadline = 0.0
        self._in_body = False  # the request being read has its headers, not yet all its body
        self._body_since = 0.0  # when its body was first seen incomplete at the end of a read
        self._in_message = False  # between the first byte of a request and its end
        self._begun = False  # a request began during the current read
        self._writing_paused = False
        self._closing = False  # input is dropped from now on (after Connection: close, or a refusal)
        self._last = False  # the next answer is the last (shutting down)
        # The request being parsed.
        self._url = b""
        self._headers: Mapping[bytes, bytes] = _NO_HEADERS
        self._forward_lines: list[bytes] = []
        self._connection_header = b""
        self._head_bytes = 0  # request line and header fields seen whole
        self._head_reads = 0  # bytes of reads that began and ended inside the headers
        self._header_count = 0
        self._body: list[bytes] = []
        self._into: bytearray | None = None  # a large body's buffer, of its declared length
        self._body_bytes = 0
        self._charge = 0  # of the request being read, against max_buffered_bytes
        self._content_length = -1
        self._expect_continue = False

    @property
    def busy(self) -> bool:
        """A request has begun arriving and is not fully answered yet."""
        return self._in_message or self._waiting is not None or bool(self._pipeline)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self._connections.add(self):
            self._refuse(_retry_later(503, f"server at max_connections={self._limits.max_connections}"))
            return
        self._idle_since = self._loop.time()
        self._idle_timer = self._loop.call_later(self._limits.idle_timeout_s, self._on_idle_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        # A handler still running finishes (an accepted request is never abandoned half-way
        # through the model); its answer has nowhere to go and is dropped, and its charge
        # returned then. Requests not handed over yet return theirs now.
        charge = self._charge
        for item in self._pipeline:
            if isinstance(item, _Request):
                charge += item.charge
        self._budget.give(charge)
        self._charge = 0
        self._pipeline.clear()
        self._in_message = False
        if self._stream is not None:
            self._stream.lost()
        elif self._waiting is not None and self._on_gone is not None:
            self._on_gone(self._reply)
        for timer in (self._idle_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # after a refusal or Connection: close, further input is dropped
        in_head = self._in_message and not self._in_body
        self._begun = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The request before the upgrade was answered as plain HTTP/1.1 (RFC 9110 7.8:
            # a server may ignore Upgrade); whatever follows it is parsed as more requests.
            self.data_received(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as exc:
            if not self._closing:  # else a callback refused the request and stopped the parser
                self._refuse(error(400, f"malformed HTTP request: {exc}"))
            return
        if not self._in_message or self._closing:
            return
        if not self._in_body:
            # httptools holds a header field until it is whole, so one huge field never reaches
            # on_header: count the reads that fell entirely inside the headers instead.
            if in_head and not self._begun:
                self._head_reads += len(data)
                if self._head_reads > self._limits.max_header_bytes:
                    self._refuse(self._headers_too_large_error())
                    return
            if self._body_timer is None:  # the head spans reads
                self._head_deadline = self._loop.time() + self._limits.header_timeout_s
                self._body_timer = self._loop.call_at(self._head_deadline, self._on_body_timer)
        else:
            # The body spans reads (small requests arrive whole and never get here): its
            # deadline counts from the first read that left it incomplete.
            if not self._body_since:
                self._body_since = self._loop.time()
            if self._body_timer is None:
                self._body_timer = self._loop.call_at(self._body_deadline(), self._on_body_timer)

    def eof_received(self) -> bool:
        # The peer sends no more but may still read: answer the complete requests it sent,
        # then close (returning False closes at once). Except a stream: a client that
        # half-closes during one has gone, as far as anyone can tell (nginx judges the same),
        # and the stream's producer must learn it now rather than at its next write.
        self._last = True
        if self._stream is not None:
            return False
        if self._waiting is not None and self._on_gone is not None:
            # Likewise for a request a proxy still queues: a client that gave up closes its socket, and FIN is
            # all that arrives. If the request was sent already, its answer is still written.
            self._on_gone(self._reply)
        return self._waiting is not None or bool(self._pipeline)

    def pause_writing(self) -> None:
        # The peer is not reading its answers: take no new requests until it does, and
        # have a stream's producer stop producing (a proxy stops reading its replica).
        self._writing_paused = True
        self._paused_since = self._loop.time()
        self.transport.pause_reading()
        if self._stream is not None:
            self._stream.on_pause()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._paused_since = None
        if self._stream is not None:
            self._stream.on_resume()
            return  # reading resumes once the stream has ended
        if not self._closing:
            self.transport.resume_reading()
        self._serve_next()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._in_message = True
        self._begun = True
        self._body_since = 0.0
        self._url = b""
        self._headers = {} if self._keep_headers else _NO_HEADERS
        if self._forward_headers:
            self._forward_lines = []
            self._connection_header = b""
        self._head_bytes = self._head_reads = self._header_count = 0
        self._body = []
        self._body_bytes = 0
        self._content_length = -1
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_URL_BYTES:
            self._refuse(error(414, f"URL longer than {_MAX_URL_BYTES} bytes"))
            raise _Stop
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_bytes += len(name) + len(value)
        if self._header_count > self._max_headers or self._head_bytes > self._max_header_bytes:
            self._headers_too_large()
        name = name.lower()
        if name == b"content-length" and value.isdigit():
            self._content_length = int(value)
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        if name in self._keep_headers:
            self._headers[name] = value  # type: ignore[index]  # a dict whenever names are kept
        if self._forward_headers:
            if name not in HOP_BY_HOP:
                self._forward_lines.append(b"%s: %s\r\n" % (name, value))
            elif name == b"connection":
                self._connection_header += b"," + value.lower()

    def on_headers_complete(self) -> None:
        self._idle_since = None  # the headers came in time; the body has its own deadline
        self._in_body = True
        length = self._content_length
        if length > 0:
            if length > self._limits.max_body_bytes:
                self._too_large()
            self._take(length)
            if length > LARGE_BODY_BYTES:
                self._into = bytearray(length)
        # A client that asked waits for this before sending the body. Only when nothing is
        # answered ahead of it, so that the 100 cannot land inside an earlier answer.
        if self._expect_continue and self._waiting is None and not self._pipeline:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        start = self._body_bytes
        self._body_bytes += len(body)
        if self._into is not None:
            self._into[start : self._body_bytes] = body
            return
        if self._content_length < 0:  # chunked: counted as it comes
            if self._body_bytes > self._limits.max_body_bytes:
                self._too_large()
            self._take(len(body))
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._into is not None:
            body: bytes | bytearray = self._into
            self._into = None
        elif len(self._body) == 1:
            body = self._body[0]  # the list holds the same object: nothing more to free
        else:
            body = b"".join(self._body)
            self._body = []  # the chunks, a second copy of the body
        charge = self._charge
        self._charge = 0
        parser = self._parser
        http10 = parser.get_http_version() == "1.0"
        if not parser.should_keep_alive():
            connection = _CLOSE
            self._closing = True  # nothing after this request is read
        else:
            connection = _KEEP_ALIVE if http10 else b""
        forward = end_to_end(self._forward_lines, self._connection_header) if self._forward_headers else b""
        self._pipeline.append(_Request(parser.get_method(), self._url, self._headers, body, connection, forward,
                                       http10, charge))
        self._serve_next()

    # limits

    def _take(self, size: int) -> None:
        budget = self._budget
        if budget.held_bytes + size <= budget.max_bytes:  # Budget.take, inline: once per request
            budget.held_bytes += size
            self._charge += size
            return
        self._refuse(_retry_later(503, f"server is holding max_buffered_bytes={budget.max_bytes} "
                                       f"of requests; retry later"))
        raise _Stop

    def _too_large(self) -> None:
        self._refuse(error(413, f"request body exceeds max_request_bytes={self._limits.max_body_bytes}"))
        raise _Stop

    def _headers_too_large(self) -> None:
        self._refuse(self._headers_too_large_error())
        raise _Stop

    def _headers_too_large_error(self) -> Response:
        return error(431, f"request headers exceed {self._limits.max_headers} fields or "
                          f"{self._limits.max_header_bytes} bytes")

    def _body_deadline(self) -> float:
        limits = self._limits
        return self._body_since + limits.body_timeout_s + self._body_bytes / limits.min_body_bytes_per_s

    def _on_body_timer(self) -> None:
        self._body_timer = None
        if not self._in_message or self._closing:
            return
        if not self._in_body:  # still in the head
            if self._loop.time() < self._head_deadline:
                self._body_timer = self._loop.call_at(self._head_deadline, self._on_body_timer)
                return
            self._refuse(error(408, f"request headers not complete within {self._limits.header_timeout_s:g} s"))
            return
        deadline = self._body_deadline()
        if self._loop.time() < deadline:  # bytes came meanwhile: the deadline moved
            self._body_timer = self._loop.call_at(deadline, self._on_body_timer)
            return
        limits = self._limits
        self._refuse(error(408, f"request body too slow: {self._body_bytes} bytes in "
                                f"{self._loop.time() - self._body_since:.1f} s (allowed: {limits.body_timeout_s:g} s "
                                f"plus 1 s per {limits.min_body_bytes_per_s} bytes)"))

    # answering

    def _refuse(self, response: Response) -> None:
        """Answer ``response`` after what is queued, then drop the rest of the input and close."""
        self._in_message = False
        self._in_body = False
        self._body = []
        self._into = None
        self._budget.give(self._charge)
        self._charge = 0
        self._closing = True
        self._pipeline.append(_Refusal(response))
        self._serve_next()

    def _serve_next(self) -> None:
        """Answer queued requests in order until one has to wait for its reply or none is left."""
        while self._pipeline and self._waiting is None and not self._writing_paused:
            item = self._pipeline.popleft()
            if isinstance(item, _Refusal):
                self._write(item.response, _CLOSE, head=False)
                self._linger()
                return
            target = _target(item.url)
            if target is None:
                self._answer(error(400, f"malformed request target {item.url!r}"), item)
                continue
            self._waiting = item
            try:
                response = self._handler(Request(item.method, item.url, *target, item.headers, item.body, item.forward),
                                         self._reply)
            except Exception:
                log.exception("handler failed on %s %s", item.method, target[0])
                response = error(500, "internal server error")
            if response is not None:
                self._waiting = None
                self._answer(response, item)
        if self.transport.is_closing():
            return
        if self._pipeline:
            self.transport.pause_reading()  # a complete request waits: read no more until it is answered
        elif self._waiting is None:
            if not self._closing and not self._writing_paused:
                self.transport.resume_reading()
            if not self._in_message:  # else the next request's headers (or body) are already arriving
                self._idle_since = self._loop.time()
            self._connections.notify()

    @overload
    def _reply(self, response: Response) -> None: ...

    @overload
    def _reply(self, response: Head) -> Stream: ...

    def _reply(self, response: Response | Head) -> Stream | None:
        """The late answer to the request in ``_waiting``: whole, or the head of a stream."""
        request = self._waiting
        assert request is not None and self._stream is None, "a reply came with no request waiting for one"
        if isinstance(response, Head):
            return self._start_stream(response, request)
        self._waiting = None
        self._answer(response, request)
        self._serve_next()
        return None

    def _start_stream(self, head: Head, request: _Request) -> Stream:
        self._budget.held_bytes -= request.charge  # the request has been handed on: its body is done with
        status_line, connection = self._status_and_connection(head.status, request.connection)
        if head.length >= 0:
            framing, chunked = b"content-length: %d\r\n" % head.length, False
        elif request.http10:  # no chunked encoding in HTTP/1.0: the body ends where the connection does
            framing, chunked, connection = b"", False, _CLOSE
        else:
            framing, chunked = b"transfer-encoding: chunked\r\n", True
        stream = Stream(self, chunked, head=request.method == b"HEAD")
        if connection is _CLOSE:
            self._closing = True
        # A client gone (reset) before the head: writing to its closed transport raises under uvloop, inside
        # the producer (a model's batch, the gateway's relay); a stream that is not open tells it instead.
        if not self.transport.is_closing():
            self.transport.write(b"".join((status_line, head.headers, framing, _Date.get(), connection, b"\r\n")))
        stream.open = not self.transport.is_closing()
        self._stream = stream
        return stream

    def stream_ended(self, complete: bool) -> None:
        """The streamed answer is written (``complete``) or broken off (close the connection)."""
        self._stream = None
        self._waiting = None
        if not complete or self._closing or self._last:
            self.transport.close()
            return
        if self._writing_paused:
            return  # resume_writing serves what is next
        self._serve_next()

    def _answer(self, response: Response, request: _Request) -> None:
        self._budget.held_bytes -= request.charge
        if self._write(response, request.connection, head=request.method == b"HEAD") is _CLOSE:
            self.transport.close()

    def _write(self, response: Response, connection: bytes, *, head: bool) -> bytes:
        """Write one answer; returns the connection header it went with."""
        if self.transport.is_closing():
            return _CLOSE
        status, body, headers = response
        status_line, connection = self._status_and_connection(status, connection)
        large = len(body) > LARGE_BODY_BYTES and not head
        self.transport.write(
            b"".join((
                status_line,
                headers,
                b"content-length: %d\r\n" % len(body),
                _Date.get(),
                connection,
                b"\r\n",
                b"" if head or large else body,
            ))
        )
        if large:
            self.transport.write(body)
        return connection

    def _status_and_connection(self, status: int, connection: bytes) -> tuple[bytes, bytes]:
        """An answer's status line, and its connection header: close when shutting down (its last answer)."""
        if self._last or self._connections.closing:
            connection = _CLOSE
        return _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status, connection  # a code a replica made up

    def _linger(self) -> None:
        # Closing a socket with unread input makes the kernel send a reset, which can destroy
        # the answer before the client reads it. So: end our side, keep reading (and dropping)
        # until the client closes or a short while has passed.
        if self.transport.is_closing():
            return
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        self._loop.call_later(_LINGER_S, self.transport.close)

    def _on_idle_timer(self) -> None:
        # One timer per connection, re-armed from here rather than on every request: a
        # request only notes the time it went idle.
        timeout_s = self._limits.idle_timeout_s
        since = self._idle_since if self._paused_since is None else self._paused_since
        if since is None:  # busy: look again a full timeout from now
            delay = timeout_s
        else:  # idle, still sending headers, or not reading its answers
            delay = since + timeout_s - self._loop.time()
            if delay <= 0:
                # close() waits for the write buffer to drain, which a peer that stopped reading never lets
                # happen: the connection and its buffered answers would be held for good.
                if self._paused_since is None:
                    self.transport.close()
                else:
                    self.transport.abort()
                return
        self._idle_timer = self._loop.call_later(delay, self._on_idle_timer)

    def shutdown(self) -> None:
        """Close now if idle; otherwise after answering the request in progress (received in full first)."""
        self._last = True
        if not self.busy:
            self.transport.close()

    def abort(self) -> None:
        """Close now, whatever is in progress."""
        self.transport.abort()


class _Stop(Exception):
    """Raised in a parser callback to stop parsing a connection that has been refused."""


def _target(url: bytes) -> tuple[str, bytes] | None:
    """The decoded path and the raw query of a request target, or None when it is not a valid one."""
    if url[:1] == b"/" and b"?" not in url and b"%" not in url and b"#" not in url:
        try:
            return url.decode("ascii"), b""  # the common case: a plain path
        except UnicodeDecodeError:
            return None
    try:
        parsed = httptools.parse_url(url)  # also takes absolute-form targets
    except httptools.HttpParserInvalidURLError:
        return None
    if parsed.path is None:
        return None
    return urllib.parse.unquote(parsed.path.decode("latin-1")), parsed.query or b""


async def listen(connection: Callable[[], HttpConnection], host: str, port: int,
                 sockets: list[socket.socket] | None = None) -> list[asyncio.Server]:
    """Listeners on ``sockets`` (already bound) or on ``host:port``."""
    loop = asyncio.get_running_loop()
    if sockets:
        listeners = [await loop.create_server(connection, sock=s, backlog=_BACKLOG) for s in sockets]
    else:
        listeners = [await loop.create_server(connection, host, port, backlog=_BACKLOG)]
    return listeners


def on_stop_signals(handler: Callable[[int], None]) -> None:
    """SIGTERM and SIGINT call ``handler(signal)``; only from the main thread (a server in a test's thread has none)."""
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, handler, sig)


def stop_accepting(listeners: list[asyncio.Server], connections: Connections) -> None:
    """Close the listeners; idle connections close now, busy ones once their current answer is written."""
    for listener in listeners:
        listener.close()
    connections.shutdown()


async def close_all(connections: Connections, timeout_s: float) -> None:
    """After ``stop_accepting``: wait up to ``timeout_s`` for the connections to close, then cut the rest.

    A drain must end within the pod's grace period whatever a client does (sends a body
    byte a minute, never reads its answer), or the kubelet's SIGKILL ends it mid-answer.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await connections.wait_until(lambda: not connections)
    except TimeoutError:
        log.warning("cutting %d connections still open %g s into the shutdown", len(connections), timeout_s)
        connections.abort()


def addresses(listeners: list[asyncio.Server]) -> list[tuple[str, int]]:
    """(host, port) of every socket the listeners accept on."""
    return [sock.getsockname()[:2] for listener in listeners for sock in listener.sockets]


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to completion on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # uvloop has no Windows build; the server still runs, slower
        asyncio.run(main)
    else:
        uvloop.run(main)
