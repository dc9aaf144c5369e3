"""The server's HTTP/1.1 over raw sockets: framing, keep-alive, limits and bad input, as clients send them."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from tests.runtime.server.support import ServerProcess, listening, request, server_in_thread, v2_body, wait_until

INFER = b"/v2/models/echo/infer"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with server_in_thread(model="echo", max_request_bytes=4096) as (port, _):
        yield port


def _connect(port: int) -> tuple[socket.socket, BinaryIO]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock, sock.makefile("rb")


def _read(stream: BinaryIO, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One response off the stream: status, lower-cased headers, body (by content-length; none for HEAD)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else stream.read(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def _post(path: bytes, body: bytes, *extra: bytes) -> bytes:
    head = [b"POST " + path + b" HTTP/1.1", b"host: t", b"content-length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _closed_by_server(sock: socket.socket) -> bool:
    return sock.recv(1) == b""


def _send_expecting_refusal(port: int, *parts: bytes) -> tuple[int, str]:
    """Send ``parts``; the answer must say close and the server must close. Returns status and error."""
    sock, stream = _connect(port)
    with sock:
        for part in parts:
            sock.sendall(part)
        status, headers, body = _read(stream)
        assert headers["connection"] == "close"
        assert _closed_by_server(sock)
    return status, json.loads(body)["error"]


def _echo_body(value: float) -> bytes:
    return json.dumps(v2_body([value])).encode()


def test_keep_alive_answers_many_requests_on_one_connection(port: int) -> None:
    sock, stream = _connect(port)
    with sock:
        for i in range(3):
            sock.sendall(_post(INFER, _echo_body(float(i))))
            status, headers, body = _read(stream)
            assert status == 200 and "connection" not in headers
            assert json.loads(body)["outputs"][0]["data"] == [float(i)]


def test_chunked_request_body_is_reassembled(port: int) -> None:
    body = _echo_body(7.0)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:25], body[25:])) + b"0\r\n\r\n"
    sock, stream = _connect(port)
    with sock:
        sock.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n" + chunks)
        status, _, reply = _read(stream)
        assert status == 200 and json.loads(reply)["outputs"][0]["data"] == [7.0]


def test_chunked_body_over_the_limit_gets_413_and_the_connection_closes(port: int) -> None:
    chunk = b"x" * 3000
    status, message = _send_expecting_refusal(
        port,
        b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n",
        b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2,
    )
    assert status == 413 and "max_request_bytes=4096" in message


def test_declared_length_over_the_limit_is_refused_before_the_body_is_sent(port: int) -> None:
    status, _ = _send_expecting_refusal(
        port, b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\ncontent-length: 100000\r\nexpect: 100-continue\r\n\r\n"
    )
    assert status == 413


def test_expect_100_continue_gets_the_interim_answer_then_the_real_one(port: int) -> None:
    body = _echo_body(3.0)
    sock, stream = _connect(port)
    with sock:
        sock.sendall(_post(INFER, body, b"expect: 100-continue")[: -len(body)])  # headers only
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
        sock.sendall(body)
        status, _, reply = _read(stream)
        assert status == 200 and json.loads(reply)["outputs"][0]["data"] == [3.0]


@pytest.mark.parametrize(
    "garbage",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\ncontent-length: nope\r\n\r\n", b"\x00\x01\x02\r\n\r\n"],
)
def test_malformed_http_gets_400_with_a_json_error_and_the_connection_closes(port: int, garbage: bytes) -> None:
    status, message = _send_expecting_refusal(port, garbage)
    assert status == 400 and "malformed HTTP request" in message


def test_connection_close_is_honoured_after_the_answer(port: int) -> None:
    sock, stream = _connect(port)
    with sock:
        sock.sendall(_post(INFER, _echo_body(1.0), b"connection: close"))
        status, headers, _ = _read(stream)
        assert status == 200 and headers["connection"] == "close"
        assert _closed_by_server(sock)


def test_http_1_0_closes_unless_asked_to_keep_alive(port: int) -> None:
    sock, stream = _connect(port)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert _read(stream)[0] == 200
        assert _closed_by_server(sock)
    sock, stream = _connect(port)
    with sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            status, headers, _ = _read(stream)
            assert status == 200 and headers["connection"] == "keep-alive"


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    slow = json.dumps(v2_body([1.0], delay_ms=200, request_id="slow")).encode()
    fast = json.dumps(v2_body([2.0], request_id="fast")).encode()
    sock, stream = _connect(port)
    with sock:
        sock.sendall(_post(INFER, slow) + b"GET /v2/health/live HTTP/1.1\r\nhost: t\r\n\r\n" + _post(INFER, fast))
        answers = [_read(stream) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert json.loads(answers[0][2])["id"] == "slow"
    assert json.loads(answers[1][2]) == {"live": True}
    assert json.loads(answers[2][2])["id"] == "fast"


def test_head_answers_headers_only(port: int) -> None:
    sock, stream = _connect(port)
    with sock:
        sock.sendall(b"HEAD /readyz HTTP/1.1\r\nhost: t\r\n\r\nGET /readyz HTTP/1.1\r\nhost: t\r\n\r\n")
        head_status, head_headers, _ = _read(stream, head=True)
        status, _, body = _read(stream)  # the next answer starts right after the HEAD's headers
        assert head_status == status == 200
        assert body == b'{"ready":true}' and int(head_headers["content-length"]) == len(body)


def test_percent_encoded_paths_are_decoded_and_query_strings_ignored(port: int) -> None:
    sock, stream = _connect(port)
    with sock:
        sock.sendall(_post(b"/v2/models/ech%6F/infer?trace=1", _echo_body(5.0)))
        status, _, body = _read(stream)
        assert status == 200 and json.loads(body)["outputs"][0]["data"] == [5.0]


def test_idle_connections_are_closed_after_keep_alive_s() -> None:
    with server_in_thread(model="echo", keep_alive_s=0.2) as (port, _):
        sock, stream = _connect(port)
        with sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
            assert _read(stream)[0] == 200
            assert _closed_by_server(sock)  # blocks until the server closes it


def test_a_client_that_stops_reading_its_answer_is_cut_off_after_keep_alive_s() -> None:
    """close() would wait for the buffered answer to drain, which a peer that does not read never allows: the
    connection, and megabytes of answer, would be held for good (and count against max_connections)."""
    with server_in_thread(model="echo", keep_alive_s=0.3, max_request_bytes=64 * 2**20) as (port, server):
        message = _post(INFER, json.dumps(v2_body([0.5] * 2_000_000)).encode())  # an 8 MB answer
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        with sock:
            sock.sendall(message)
            wait_until(lambda: len(server._connections) == 0, timeout_s=10)
            received = 0
            try:
                while chunk := sock.recv(2**20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
            assert received < 8 * 2**20, "the answer was cut off, not kept for a reader that never came"


def test_drain_closes_idle_connections_and_the_server_stops() -> None:
    with server_in_thread(model="echo") as (port, server):
        sock, stream = _connect(port)
        with sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
            assert _read(stream)[0] == 200
            server.begin_drain()
            assert _closed_by_server(sock)
        wait_until(lambda: not listening(port))



@pytest.mark.parametrize(
    ("headers", "what"),
    [
        (b"x-big: " + b"a" * 200_000 + b"\r\n", "one 200 KB header field"),
        (b"".join(b"x-h%d: v\r\n" % i for i in range(101)), "101 header fields"),
    ],
)
def test_headers_over_the_limits_get_431_and_the_connection_closes(port: int, headers: bytes, what: str) -> None:
    status, message = _send_expecting_refusal(port, b"GET /healthz HTTP/1.1\r\nhost: t\r\n" + headers + b"\r\n")
    assert status == 431, what
    assert "100 fields" in message and "65536 bytes" in message


def test_headers_within_the_limits_are_served(port: int) -> None:
    headers = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 500) for i in range(90))  # 90 fields, ~46 KB
    sock, stream = _connect(port)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n" + headers + b"\r\n")
        assert _read(stream)[0] == 200


def test_a_body_sent_a_byte_at_a_time_is_cut_with_408() -> None:
    with server_in_thread(model="echo", body_timeout_s=0.5) as (port, _):
        sock, stream = _connect(port)
        with sock:
            start = time.monotonic()
            sock.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{")
            status, headers, body = _read(stream)
            assert status == 408 and headers["connection"] == "close"
            assert "too slow: 1 bytes" in json.loads(body)["error"]
            assert 0.4 < time.monotonic() - start < 3
            assert _closed_by_server(sock)


@pytest.mark.parametrize("head", [b"GET /\r\n", b"GET /healthz HTTP/1.1\r\nhost: t\r\n"],
                         ids=["HTTP/0.9", "headers never finished"])
def test_a_request_head_left_incomplete_is_cut_with_408(head: bytes) -> None:
    with server_in_thread(model="echo") as (port, server):
        sock, stream = _connect(port)
        with sock:
            start = time.monotonic()
            sock.sendall(head)
            status, headers, body = _read(stream)
            assert status == 408 and "request headers not complete within 10 s" in json.loads(body)["error"]
            assert 9 < time.monotonic() - start < 15


def test_a_body_arriving_at_the_minimum_rate_gets_more_time_than_the_base_allowance() -> None:
    body = json.dumps(v2_body([0.5] * 9000)).encode()  # ~45 KB: 0.5 s + ~2.7 s at 16 KiB/s
    with server_in_thread(model="echo", body_timeout_s=0.5) as (port, _):
        sock, stream = _connect(port)
        with sock:
            sock.sendall(_post(INFER, body)[: -len(body)])
            for i in range(0, len(body), len(body) // 4 + 1):
                sock.sendall(body[i : i + len(body) // 4 + 1])
                time.sleep(0.3)  # 1.2 s in all: past the base 0.5 s, within the allowance
            status, _, reply = _read(stream)
            assert status == 200 and len(json.loads(reply)["outputs"][0]["data"]) == 9000


def test_connections_past_max_connections_get_503_and_a_freed_one_is_reused() -> None:
    with server_in_thread(model="echo", max_connections=2) as (port, _):
        wait_until(lambda: not _open_connections(port))  # the readiness probe's connection has gone
        held = [_connect(port) for _ in range(2)]
        for sock, stream in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
            assert _read(stream)[0] == 200
        sock, stream = _connect(port)
        with sock:
            status, headers, _ = _read(stream)
            assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
        for sock, stream in held:
            stream.close()
        held[0][0].close()  # the stream's reference was the other one keeping it open
        wait_until(lambda: _healthz_status(port) == 200)
        held[1][0].close()


def test_bodies_past_max_buffered_bytes_are_shed_with_503_until_one_is_answered() -> None:
    first = json.dumps(v2_body([1.5] * 100)).encode()  # ~600 bytes
    with server_in_thread(model="echo", max_buffered_bytes=1000) as (port, _):
        slow, slow_stream = _connect(port)
        with slow:
            slow.sendall(_post(INFER, first)[:-10])  # the headers and most of the body: 600 bytes held
            wait_until(lambda: _post_status(port, first) == 503)  # 600 more would pass 1000
            slow.sendall(first[-10:])
            assert _read(slow_stream)[0] == 200
        assert _post_status(port, first) == 200  # the first body's bytes were given back


def _exit_s_after_sigterm(server: ServerProcess) -> float:
    start = time.monotonic()
    server.terminate()
    assert server.wait(timeout_s=30) == 0
    return time.monotonic() - start


def test_sigterm_drain_is_bounded_when_a_client_never_finishes_its_body() -> None:
    # The process's own exit (interpreter teardown) took 0.3 s idle and 1.5 s on a loaded CI machine, so the bound
    # is taken over an idle server's exit measured in the same run, not over wall time alone.
    idle = ServerProcess("--timeout-s", "1", "--body-timeout-s", "600")
    try:
        wait_until(lambda: request(idle.port, "GET", "/readyz").status == 200)
        idle_exit_s = _exit_s_after_sigterm(idle)
    finally:
        idle.kill()
    server = ServerProcess("--timeout-s", "1", "--body-timeout-s", "600")
    try:
        wait_until(lambda: request(server.port, "GET", "/readyz").status == 200)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{")
            # timeout_s (1) + 2 s for the busy connections + 2 s for the rest = 5 s, not the body's 600 s.
            assert _exit_s_after_sigterm(server) < idle_exit_s + 5 + 1
    finally:
        server.kill()


def _post_status(port: int, body: bytes) -> int:
    return request(port, "POST", INFER.decode(), body).status


def _healthz_status(port: int) -> int:
    try:
        return request(port, "GET", "/healthz").status
    except OSError:
        return 0


def _open_connections(port: int) -> int:
    """Established TCP connections to 127.0.0.1:port, from /proc/net/tcp (state 01)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if row[1].endswith(f":{port:04X}") and row[3] == "01")
