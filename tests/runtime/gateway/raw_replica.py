"""A replica written on raw sockets, for what a model server never does: break streams, hang, flood.

Routes (any method):
- `/sse?n=N&gap_s=G`: N server-sent events, G seconds apart, chunked;
- `/break?n=N`: N events, then the connection closes mid-answer;
- `/hang`: one event, then nothing until the client goes away (noted in `closed_early`);
- `/flood?mb=M`: M MiB chunked as fast as the socket takes them (`sent_bytes` counts them);
- `/headers`: the request's head as JSON, with end-to-end and hop-by-hop response headers.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit


class RawReplica(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.closed_early = threading.Event()
        self.sent_bytes = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.BaseRequestHandler):
    server: RawReplica

    def handle(self) -> None:
        sock: socket.socket = self.request
        reader = sock.makefile("rb")
        while True:
            line = reader.readline()
            if not line:
                return
            method, target, _ = line.decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", "0")))
            self.server.requests.append((method, target, headers, body))
            url = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if not getattr(self, "_" + url.path.strip("/"))(sock, method, target, headers, query):
                return

    @staticmethod
    def _event(sock: socket.socket, data: bytes) -> None:
        event = b"data: " + data + b"\n\n"
        sock.sendall(b"%x\r\n%s\r\n" % (len(event), event))

    @staticmethod
    def _sse_head(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

    def _sse(self, sock: socket.socket, method: str, target: str, headers: dict[str, str],
             query: dict[str, str]) -> bool:
        self._sse_head(sock)
        for i in range(int(query.get("n", "3"))):
            if i:
                time.sleep(float(query.get("gap_s", "0")))
            self._event(sock, b'{"token": %d}' % i)
        sock.sendall(b"0\r\n\r\n")
        return True

    def _break(self, sock: socket.socket, method: str, target: str, headers: dict[str, str],
               query: dict[str, str]) -> bool:
        self._sse_head(sock)
        for i in range(int(query.get("n", "2"))):
            self._event(sock, b'{"token": %d}' % i)
        sock.shutdown(socket.SHUT_RDWR)
        return False

    def _hang(self, sock: socket.socket, method: str, target: str, headers: dict[str, str],
              query: dict[str, str]) -> bool:
        self._sse_head(sock)
        self._event(sock, b'{"token": 0}')
        sock.settimeout(30)
        try:
            if sock.recv(1) == b"":  # the gateway closed the connection: the request was cancelled
                self.server.closed_early.set()
        except OSError:
            self.server.closed_early.set()
        return False

    def _flood(self, sock: socket.socket, method: str, target: str, headers: dict[str, str],
               query: dict[str, str]) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(int(query.get("mb", "64")) * 16):
            sock.sendall(b"10000\r\n" + chunk + b"\r\n")
            self.server.sent_bytes += len(chunk)
        sock.sendall(b"0\r\n\r\n")
        return True

    def _headers(self, sock: socket.socket, method: str, target: str, headers: dict[str, str],
                 query: dict[str, str]) -> bool:
        body = json.dumps({"method": method, "target": target, "headers": headers}).encode()
        sock.sendall(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-model-version: 7\r\n"
                     b"connection: x-replica-secret\r\nx-replica-secret: hop\r\nkeep-alive: timeout=5\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))
        return True


@contextmanager
def raw_replica() -> Iterator[RawReplica]:
    server = RawReplica()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
