"""The gateway as a reverse proxy: any method and path, headers end to end, streamed answers, cancellation."""

from __future__ import annotations

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from infra_inference.runtime.gateway import GatewayApp, GatewayServer
from tests.runtime.gateway.raw_replica import raw_replica
from tests.runtime.gateway.support import backend, config, gateway_in_thread, serving
from tests.runtime.server.support import request, scrape, server_in_thread, wait_until


def _open(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
          timeout_s: float = 30) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    conn.request(method, path, body=body, headers=headers or {})
    return conn, conn.getresponse()


def _events(response: http.client.HTTPResponse) -> list[bytes]:
    return [line for line in response.read().split(b"\n") if line.startswith(b"data: ")]


def test_every_method_and_path_reaches_the_replica_and_its_answer_comes_back() -> None:
    with server_in_thread() as (rport, _):
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"])])) as (gport, admin, _):
            metadata = request(gport, "GET", "/v2/models/echo")
            assert metadata.status == 200 and metadata.json()["name"] == "echo"
            assert request(gport, "GET", "/v2/models/echo/ready").json() == {"name": "echo", "ready": True}
            assert request(gport, "DELETE", "/v2/models/echo").status == 405  # the replica's answer, passed back
            assert request(gport, "HEAD", "/v2/models/echo").body == b""
            # The service port's /metrics is the replica's; the gateway's own is on the admin port only.
            assert "deployment=" not in request(gport, "GET", "/metrics").body.decode()
            assert 'deployment="svc"' in request(admin, "GET", "/metrics").body.decode()
            assert request(admin, "GET", "/v2/models/echo").status == 404


def test_end_to_end_headers_pass_both_ways_and_hop_by_hop_ones_stop_at_the_gateway() -> None:
    with raw_replica() as replica, gateway_in_thread(config([backend(endpoints=[replica.address])])) as (gport, _, _):
        conn, response = _open(gport, "PUT", "/headers?x=1", b"{}", {
            "x-trace-id": "abc", "authorization": "Bearer t", "content-type": "application/json",
            "connection": "x-client-secret", "x-client-secret": "hop", "keep-alive": "timeout=9", "te": "trailers"})
        seen = json.loads(response.read())
        conn.close()
        assert response.status == 201 and seen["method"] == "PUT" and seen["target"] == "/headers?x=1"
        assert {k: seen["headers"][k] for k in ("x-trace-id", "authorization", "content-type")} == {
            "x-trace-id": "abc", "authorization": "Bearer t", "content-type": "application/json"}
        assert not {"x-client-secret", "keep-alive", "te"} & set(seen["headers"])
        assert response.getheader("x-model-version") == "7"
        assert response.getheader("x-replica-secret") is None and response.getheader("keep-alive") is None


def test_a_chunked_request_body_reaches_the_replica_whole() -> None:
    with raw_replica() as replica, gateway_in_thread(config([backend(endpoints=[replica.address])])) as (gport, _, _):
        conn = http.client.HTTPConnection("127.0.0.1", gport, timeout=10)
        conn.request("POST", "/headers", body=iter([b'{"a": ', b"1}"]), encode_chunked=True)
        assert conn.getresponse().status == 201
        conn.close()
        assert replica.requests[-1][3] == b'{"a": 1}'
        assert replica.requests[-1][2]["content-length"] == "8"


def test_server_sent_events_reach_the_client_as_the_replica_sends_them() -> None:
    with raw_replica() as replica, gateway_in_thread(config([backend(endpoints=[replica.address])])) as (gport, admin, _):
        start = time.monotonic()
        conn, response = _open(gport, "POST", "/sse?n=4&gap_s=0.4", b"{}")
        assert response.getheader("content-type") == "text/event-stream"
        first = response.read1(65536)
        first_s = time.monotonic() - start
        rest = response.read()
        total_s = time.monotonic() - start
        conn.close()
        assert first == b'data: {"token": 0}\n\n'
        assert first_s < 0.3 < 1.2 <= total_s  # the first token at once, not after the whole answer
        assert rest.count(b"data: ") == 3
        samples = scrape(admin)
        labels = '{deployment="svc",service="svc",variant="main"}'
        assert samples[f"infra_inference_time_to_first_token_seconds_count{labels}"] == 1
        assert samples[f"infra_inference_time_to_first_token_seconds_sum{labels}"] < 0.3
        assert samples[f"infra_inference_stream_duration_seconds_sum{labels}"] >= 1.2


def test_a_stream_the_replica_breaks_off_ends_with_an_error_event_and_is_not_retried() -> None:
    with raw_replica() as a, raw_replica() as b:
        with gateway_in_thread(config([backend(endpoints=[a.address, b.address])])) as (gport, admin, _):
            conn, response = _open(gport, "POST", "/break?n=2", b"{}")
            with pytest.raises(http.client.IncompleteRead) as broken:
                response.read()
            conn.close()
            received = broken.value.partial
            assert received.count(b'"token"') == 2 and b"event: error" in received
            assert b"stream broken off" in received
            assert len(a.requests) + len(b.requests) == 1  # something reached the client: no retry
            assert scrape(admin)['infra_inference_streams_broken_total{deployment="svc",service="svc",variant="main"}'] == 1


def test_a_client_that_goes_away_cancels_the_replica_request_and_frees_the_slot() -> None:
    with raw_replica() as replica:
        with gateway_in_thread(config([backend(endpoints=[replica.address], max_concurrency=1)])) as (gport, _, app):
            conn, response = _open(gport, "POST", "/hang", b"{}")
            assert response.read1(65536).startswith(b"data: ")
            assert app.dispatcher.backends["svc"].inflight == 1
            conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            assert replica.closed_early.wait(5)
            wait_until(lambda: app.dispatcher.backends["svc"].inflight == 0)
            conn, response = _open(gport, "POST", "/sse?n=1", b"{}")  # the one slot serves the next request
            assert _events(response) == [b'data: {"token": 0}']
            conn.close()


def test_a_client_that_stops_reading_stops_the_reads_from_the_replica() -> None:
    with raw_replica() as replica, gateway_in_thread(config([backend(endpoints=[replica.address])])) as (gport, _, _):
        conn, response = _open(gport, "GET", "/flood?mb=64")
        time.sleep(1.0)  # the client reads nothing meanwhile
        # What the replica got rid of sits in socket buffers (a few MiB), not in the gateway's memory.
        assert replica.sent_bytes < 16 * 2**20
        received = 0
        while chunk := response.read1(2**20):
            received += len(chunk)
        conn.close()
        assert received == replica.sent_bytes == 64 * 2**20


def test_stopping_lets_an_open_stream_finish() -> None:
    with raw_replica() as replica:
        cfg = config([backend(endpoints=[replica.address])])
        server = GatewayServer(GatewayApp(cfg), cfg)
        with serving(server) as (gport, _, _), ThreadPoolExecutor(1) as pool:
            def stream() -> list[bytes]:
                conn, response = _open(gport, "POST", "/sse?n=5&gap_s=0.2", b"{}")
                try:
                    return _events(response)
                finally:
                    conn.close()

            events = pool.submit(stream)
            wait_until(lambda: len(replica.requests) == 1)
            server.stop()
            assert len(events.result(timeout=10)) == 5


@pytest.mark.parametrize("injection", [b"x-a: b\r\n injected: yes\r\n",  # obs-fold
                                       b"x-a: b\ninjected: yes\r\n",  # bare LF
                                       b"x-a: b\rinjected: yes\r\n"])  # bare CR
def test_a_header_smuggling_another_is_400_and_never_forwarded(injection: bytes) -> None:
    with raw_replica() as replica, gateway_in_thread(config([backend(endpoints=[replica.address])])) as (gport, _, _):
        with socket.create_connection(("127.0.0.1", gport), timeout=10) as sock:
            sock.sendall(b"GET /headers HTTP/1.1\r\nhost: x\r\n" + injection + b"\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"malformed HTTP request" in answer
        assert replica.requests == []
