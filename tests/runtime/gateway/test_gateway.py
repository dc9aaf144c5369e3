"""The gateway against real model servers over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from infra_inference.runtime.gateway import GatewayApp, GatewayServer, dispatch
from infra_inference.wire.gateway import BackendConfig
from tests.runtime.gateway.support import ManualDiscovery, backend, closed_port, config, gateway_in_thread, serving
from tests.runtime.server.support import (Reply, listening, post, request, scrape, server_in_thread, v2_body,
                                          wait_until)
from tests.support.ports import free_ports

INFER = "/v2/models/echo/infer"


def infer(port: int, delay_ms: float = 0.0, headers_session: str | None = None, timeout_s: float = 30) -> Reply:
    if headers_session is None:
        return post(port, INFER, v2_body([1.0, 2.0], delay_ms=delay_ms), timeout_s)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("POST", INFER, body=json.dumps(v2_body([1.0])).encode(),
                     headers={"content-type": "application/json", "x-infra-inference-session": headers_session})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def gauge(port: int, name: str, deployment: str = "svc", variant: str = "main") -> float:
    return scrape(port).get(f'{name}{{deployment="{deployment}",service="svc",variant="{variant}"}}', 0.0)


def test_proxies_an_inference_request() -> None:
    with server_in_thread() as (rport, _):
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"])])) as (gport, admin, _):
            reply = infer(gport)
            assert reply.status == 200
            assert reply.json()["outputs"][0]["data"] == [1.0, 2.0]
            assert reply.headers["content-type"] == "application/json"
            samples = scrape(admin)
            assert samples['infra_inference_requests_total{code="200",deployment="svc",service="svc",variant="main"}'] == 1
            # Little's law's two halves, for the autoscaler: arrivals, and time spent in a replica.
            assert samples['infra_inference_arrivals_total{deployment="svc",service="svc",variant="main"}'] == 1
            assert samples['infra_inference_replica_duration_seconds_count{deployment="svc",service="svc",variant="main"}'] == 1


def test_dispatch_honours_max_concurrency_and_queues_the_rest() -> None:
    # 2 replicas x 2 slots: 4 slow requests fill every slot, one each side at most 2; the 5th waits here.
    with server_in_thread(max_concurrency=8) as (a, _), server_in_thread(max_concurrency=8) as (b, _):
        cfg = config([backend(max_concurrency=2, endpoints=[f"127.0.0.1:{a}", f"127.0.0.1:{b}"])])
        with gateway_in_thread(cfg) as (gport, admin, _), ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(infer, gport, 1500) for _ in range(5)]
            wait_until(lambda: gauge(admin, "infra_inference_queue_depth") == 1)
            assert gauge(admin, "infra_inference_inflight_requests") == 4
            assert scrape(a)["infra_inference_inflight_requests"] == 2
            assert scrape(b)["infra_inference_inflight_requests"] == 2
            assert [f.result().status for f in futures] == [200] * 5


def test_queue_full_is_429_with_retry_after() -> None:
    with server_in_thread() as (rport, _):
        cfg = config([backend(max_concurrency=1, endpoints=[f"127.0.0.1:{rport}"])], max_queue=1)
        with gateway_in_thread(cfg) as (gport, admin, _), ThreadPoolExecutor(2) as pool:
            busy = pool.submit(infer, gport, 1500)
            wait_until(lambda: gauge(admin, "infra_inference_inflight_requests") == 1)
            queued = pool.submit(infer, gport, 0)
            wait_until(lambda: gauge(admin, "infra_inference_queue_depth") == 1)
            refused = infer(gport)
            assert refused.status == 429 and refused.headers["retry-after"] == "1"
            assert "queue full" in refused.json()["error"]
            assert busy.result().status == 200 and queued.result().status == 200


def test_a_request_whose_client_left_while_queued_leaves_the_queue() -> None:
    """It would otherwise hold its place in max_queue for timeout_s and then take the slot for nobody: clients
    that give up and retry would fill the queue with the requests they abandoned."""
    with server_in_thread() as (rport, _):
        cfg = config([backend(max_concurrency=1, endpoints=[f"127.0.0.1:{rport}"])], max_queue=1, timeout_s=30)
        with gateway_in_thread(cfg) as (gport, admin, _), ThreadPoolExecutor(2) as pool:
            busy = pool.submit(infer, gport, 1500)
            wait_until(lambda: gauge(admin, "infra_inference_queue_depth") == 0 and
                       gauge(admin, "infra_inference_inflight_requests") == 1)
            body = json.dumps(v2_body([1.0])).encode()
            gone = socket.create_connection(("127.0.0.1", gport))
            gone.sendall(b"POST " + INFER.encode() + b" HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body)
                         + body)
            wait_until(lambda: gauge(admin, "infra_inference_queue_depth") == 1)
            gone.close()  # the client gives up
            wait_until(lambda: gauge(admin, "infra_inference_queue_depth") == 0, timeout_s=5)
            assert infer(gport).status == 200, "the queue's one place is free again, and the slot goes to a live one"
            assert busy.result().status == 200
            counts = {k: v for k, v in scrape(admin).items() if k.startswith("infra_inference_requests_total")}
            assert counts.get('infra_inference_requests_total{code="499",deployment="svc",service="svc",variant="main"}') == 1, counts


def test_queue_timeout_is_504_naming_the_limit() -> None:
    # No replica ever comes: the request waits its whole timeout_s in the queue. (Behind a busy
    # replica instead, the busy request's own deadline passes first and frees the slot in time.)
    with gateway_in_thread(config([backend(endpoints=[])], timeout_s=0.5)) as (gport, admin, _):
        late = infer(gport)
        assert late.status == 504 and "no free replica slot within timeout_s=0.5" in late.json()["error"]
        assert gauge(admin, "infra_inference_queue_depth") == 0


def test_a_replica_slower_than_the_timeout_is_504_naming_the_limit() -> None:
    with server_in_thread() as (rport, _):
        cfg = config([backend(max_concurrency=1, endpoints=[f"127.0.0.1:{rport}"])], timeout_s=0.5)
        with gateway_in_thread(cfg) as (gport, admin, _):
            slow = infer(gport, 2000)
            assert slow.status == 504 and "no answer from replica" in slow.json()["error"]
            assert "timeout_s=0.5" in slow.json()["error"]
            samples = scrape(admin)
            assert samples['infra_inference_requests_total{code="504",deployment="svc",service="svc",variant="main"}'] == 1


def test_zero_replicas_buffers_and_pokes_the_activator() -> None:
    discovery = ManualDiscovery({"svc": []})
    with server_in_thread() as (rport, _), gateway_in_thread(config([backend()]), discovery) as (gport, admin, _), \
            ThreadPoolExecutor(2) as pool:
        poll = pool.submit(request, admin, "GET", "/activator/wait?timeout_s=20")
        pending = pool.submit(infer, gport)
        poke = poll.result(timeout=10)
        assert poke.json() == {"poked": True, "deployments": ["svc"]}
        assert not pending.done()
        discovery.set("svc", [f"127.0.0.1:{rport}"])
        assert pending.result().status == 200


def test_activator_wait_times_out_quietly_without_demand() -> None:
    with gateway_in_thread(config([backend()]), ManualDiscovery()) as (gport, admin, _):
        assert request(admin, "GET", "/activator/wait?timeout_s=0.1").json() == {"poked": False, "deployments": []}


def test_a_dead_replica_is_retried_on_another_and_ejected() -> None:
    with server_in_thread() as (rport, _):
        cfg = config([backend(endpoints=[f"127.0.0.1:{closed_port()}", f"127.0.0.1:{rport}"])])
        with gateway_in_thread(cfg) as (gport, admin, _):
            assert [infer(gport).status for _ in range(20)] == [200] * 20
            assert gauge(admin, "infra_inference_ready_replicas") == 1


def test_no_answer_twice_is_502_with_the_cause() -> None:
    cfg = config([backend(endpoints=[f"127.0.0.1:{port}" for port in free_ports(2)])])
    with gateway_in_thread(cfg) as (gport, admin, _):
        reply = infer(gport)
        assert reply.status == 502 and "ConnectionRefusedError" in reply.json()["error"]


def test_a_draining_replica_is_retried_on_another() -> None:
    with server_in_thread() as (a, draining), server_in_thread() as (b, _):
        draining.app.dataplane.start_drain()
        cfg = config([backend(endpoints=[f"127.0.0.1:{a}", f"127.0.0.1:{b}"])])
        with gateway_in_thread(cfg) as (gport, admin, _):
            assert [infer(gport).status for _ in range(10)] == [200] * 10


def test_canary_gets_its_share_and_sticky_sessions_stay_put() -> None:
    with server_in_thread() as (main, _), server_in_thread() as (canary, _):
        cfg = config([backend("svc", weight=90, endpoints=[f"127.0.0.1:{main}"]),
                      backend("svc-canary", variant="canary", weight=10, endpoints=[f"127.0.0.1:{canary}"])])
        with gateway_in_thread(cfg, seed=7) as (gport, admin, _), ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: infer(gport).status, range(2000)))
            assert statuses == [200] * 2000
            samples = scrape(admin)
            to_canary = samples['infra_inference_requests_total{code="200",deployment="svc-canary",service="svc",variant="canary"}']
            assert 160 <= to_canary <= 240  # 10 % +/- 2 % of 2,000
            before = scrape(canary).get('infra_inference_requests_total{code="200"}', 0)
            sessions = [f"user-{i}" for i in range(40)]
            first = [_variant_of(gport, canary, s) for s in sessions]
            assert [_variant_of(gport, canary, s) for s in sessions] == first
            assert scrape(canary).get('infra_inference_requests_total{code="200"}', 0) > before


_lock = threading.Lock()


def _variant_of(gport: int, canary_port: int, session: str) -> bool:
    """Whether this session's request went to the canary (serialised so the count is unambiguous)."""
    with _lock:
        before = scrape(canary_port).get('infra_inference_requests_total{code="200"}', 0)
        assert infer(gport, headers_session=session).status == 200
        return scrape(canary_port).get('infra_inference_requests_total{code="200"}', 0) > before


def test_fallback_takes_only_overflow() -> None:
    with server_in_thread() as (gpu, _), server_in_thread() as (cpu, _):
        cfg = config([backend("svc", max_concurrency=1, endpoints=[f"127.0.0.1:{gpu}"]),
                      backend("svc-cpu", variant="cpu", weight=0, fallback=True, endpoints=[f"127.0.0.1:{cpu}"])])
        with gateway_in_thread(cfg) as (gport, admin, _), ThreadPoolExecutor(2) as pool:
            assert infer(gport).status == 200
            assert scrape(cpu).get('infra_inference_requests_total{code="200"}', 0) == 0
            busy = pool.submit(infer, gport, 1000)
            wait_until(lambda: gauge(admin, "infra_inference_inflight_requests") == 1)
            assert infer(gport).status == 200
            assert scrape(cpu)['infra_inference_requests_total{code="200"}'] == 1
            assert busy.result().status == 200


def test_replica_closing_idle_connections_costs_no_request_and_no_ejection() -> None:
    # The replica drops keep-alive connections idle for 0.2 s; the gateway's pooled connection to it
    # goes stale between requests, and each request must still be answered by that same replica.
    with server_in_thread(keep_alive_s=0.2) as (rport, _):
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"])])) as (gport, admin, _):
            statuses = []
            for _ in range(5):
                statuses.append(infer(gport).status)
                time.sleep(0.3)
            assert statuses == [200] * 5
            assert gauge(admin, "infra_inference_ready_replicas") == 1
            assert scrape(rport)['infra_inference_requests_total{code="200"}'] == 5


def test_the_request_target_reaches_the_replica_as_sent() -> None:
    # Percent-encoding and the query string pass through unchanged (the replica decodes the path).
    with server_in_thread() as (rport, _):
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"])])) as (gport, admin, _):
            reply = post(gport, "/v2/models/%65cho/infer?trace=1", v2_body([3.0]))
            assert reply.status == 200 and reply.json()["outputs"][0]["data"] == [3.0]


def test_a_body_over_the_limit_is_413_before_any_replica_sees_it() -> None:
    with server_in_thread() as (rport, _):
        cfg = config([backend(endpoints=[f"127.0.0.1:{rport}"])], max_request_bytes=1024)
        with gateway_in_thread(cfg) as (gport, admin, _):
            reply = post(gport, INFER, v2_body([1.0] * 1000))
            assert reply.status == 413 and "max_request_bytes=1024" in reply.json()["error"]
            assert scrape(rport).get('infra_inference_requests_total{code="200"}', 0) == 0


def test_stopping_lets_the_request_in_flight_finish_and_refuses_new_connections() -> None:
    with server_in_thread() as (rport, _):
        cfg = config([backend(endpoints=[f"127.0.0.1:{rport}"])])
        app = GatewayApp(cfg)
        server = GatewayServer(app, cfg)
        with serving(server) as (gport, _, _), ThreadPoolExecutor(1) as pool:
            slow = pool.submit(infer, gport, 800)
            wait_until(lambda: app.dispatcher.backends["svc"].inflight == 1)
            server.stop()
            assert slow.result().status == 200
            wait_until(lambda: not listening(gport))


def test_on_stop_the_gateway_turns_unready_but_answers_new_connections_through_its_drain_grace() -> None:
    with server_in_thread() as (rport, _):
        cfg = config([backend(endpoints=[f"127.0.0.1:{rport}"])], drain_grace_s=1.5)
        app = GatewayApp(cfg)
        server = GatewayServer(app, cfg)
        with serving(server) as (gport, admin, _):
            server.stop()  # what SIGTERM does
            wait_until(lambda: request(admin, "GET", "/readyz").status == 503)
            time.sleep(0.3)
            late = infer(gport)  # a connection made 0.3 s after the stop: answered, not refused
            assert late.status == 200 and late.headers["connection"] == "close"
            wait_until(lambda: not listening(gport))


class _ClosesEachConnectionOnItsSecondRequest(socketserver.BaseRequestHandler):
    """A replica whose idle close races the gateway's reuse: the second request on a connection meets EOF."""

    def handle(self) -> None:
        stream = self.request.makefile("rb")
        for nth in (1, 2):
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = stream.readline()
                if not line:
                    return
                head += line
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            stream.read(length)
            if nth == 2:
                return  # closed without an answer, as after a keep-alive timeout
            self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")


def test_a_reused_connection_closed_under_the_request_is_retried_on_a_fresh_one_to_the_same_replica() -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ClosesEachConnectionOnItsSecondRequest) as replica:
        threading.Thread(target=replica.serve_forever, daemon=True).start()
        rport = replica.server_address[1]
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"])])) as (gport, admin, _):
            assert [infer(gport).status for _ in range(4)] == [200] * 4
            assert gauge(admin, "infra_inference_ready_replicas") == 1
        replica.shutdown()


def test_requests_queued_behind_an_ejected_replica_get_it_back_when_the_ejection_ends(monkeypatch: Any) -> None:
    """Nothing else may arrive or finish to hand the slot on once the ejection ends: the queue must not wait
    out its timeout for a replica that is back."""
    monkeypatch.setattr(dispatch, "EJECT_S", 0.2)

    async def scenario() -> float:
        dispatcher = dispatch.Dispatcher([BackendConfig(**backend("m"))], 16, time.monotonic)
        dispatcher.set_replicas("m", ["127.0.0.1:1"])
        main = dispatcher.backends["m"]
        replica = dispatcher.try_acquire(main)
        assert replica is not None
        dispatcher.eject(replica)  # it failed once
        dispatcher.release(replica)
        start = time.monotonic()
        await dispatcher.acquire(main, timeout_s=5.0)
        return time.monotonic() - start

    loop = asyncio.new_event_loop()  # not asyncio.run(), which leaves no current loop for later tests
    try:
        assert loop.run_until_complete(scenario()) < 2.0
    finally:
        loop.close()
