"""Overload, timeouts and drain against real servers: refuse early, never lose an accepted request."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.runtime.server import user_model
from tests.runtime.server.support import (
    Reply,
    ServerProcess,
    post,
    request,
    scrape,
    server_in_thread,
    v2_body,
    wait_until,
)


def _echo(port: int, i: int, delay_ms: float = 0.0) -> tuple[int, Reply]:
    return i, post(port, "/v2/models/echo/infer", v2_body([float(i), -float(i)], delay_ms=delay_ms, request_id=str(i)))


def _assert_correct(i: int, reply: Reply) -> None:
    body = reply.json()
    assert body["id"] == str(i)
    assert body["outputs"][0]["data"] == [float(i), -float(i)]


def test_overload_refuses_excess_with_429_and_answers_every_accepted_request() -> None:
    max_concurrency, max_queue = 2, 4
    clients = 10 * (max_concurrency + max_queue)
    with server_in_thread(model="echo", max_concurrency=max_concurrency, max_queue=max_queue, echo_delay_ms=100) as (
        port,
        _,
    ):
        with ThreadPoolExecutor(clients) as pool:
            replies = list(pool.map(lambda i: _echo(port, i), range(clients)))
        refused = [reply for _, reply in replies if reply.status == 429]
        accepted = [(i, reply) for i, reply in replies if reply.status != 429]
        assert refused, "10x the capacity must overflow the queue"
        assert all(reply.headers.get("retry-after") == "1" for reply in refused)
        assert len(accepted) >= max_concurrency + max_queue
        for i, reply in accepted:
            assert reply.status == 200
            _assert_correct(i, reply)
        metrics = scrape(port)
        assert metrics['infra_inference_requests_total{code="429"}'] == len(refused)
        assert metrics['infra_inference_requests_total{code="200"}'] == len(accepted)


def test_request_past_timeout_gets_504_and_its_recalled_batch_frees_the_slot_for_the_next() -> None:
    with server_in_thread(model="echo", max_concurrency=1, max_queue=4, timeout_s=1.0) as (port, _):
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(_echo, port, 1, 3000.0)  # holds the only slot up to its deadline
            wait_until(lambda: scrape(port)["infra_inference_inflight_requests"] == 1)
            time.sleep(0.3)
            queued = pool.submit(_echo, port, 2)  # queued behind it, its deadline 0.3 s after the slow one's
            assert slow.result()[1].status == 504
            # echo's predict is a coroutine: recalled at the deadline, it gives the slot to the next.
            i, reply = queued.result()
            assert reply.status == 200
            _assert_correct(i, reply)
        assert scrape(port)["infra_inference_inflight_requests"] == 0
        assert scrape(port)['infra_inference_requests_total{code="504"}'] == 1


def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_zero() -> None:
    server = ServerProcess("--max-concurrency", "4", "--max-queue", "8")
    try:
        # Listening comes before the model is loaded; until then inference answers 503.
        wait_until(lambda: request(server.port, "GET", "/readyz").status == 200)
        n = 8  # 4 in the model, 4 queued behind them
        with ThreadPoolExecutor(n + 1) as pool:
            inflight = [pool.submit(_echo, server.port, i, 600.0) for i in range(n)]
            wait_until(
                lambda: (m := scrape(server.port))["infra_inference_inflight_requests"] == 4
                and m["infra_inference_queue_depth"] == 4
            )
            server.terminate()
            wait_until(lambda: request(server.port, "GET", "/readyz").status == 503)
            late = post(server.port, "/v2/models/echo/infer", v2_body([1.0]))
            assert late.status == 503
            for future in inflight:
                i, reply = future.result()
                assert reply.status == 200
                _assert_correct(i, reply)
        assert server.wait() == 0, "".join(server.log)
    finally:
        server.kill()


def test_a_client_delay_far_past_timeout_cannot_wedge_the_replica() -> None:
    with server_in_thread(model="echo", max_concurrency=1, max_queue=4, timeout_s=0.3) as (port, _):
        assert _echo(port, 1, delay_ms=1e9)[1].status == 504
        wait_until(lambda: scrape(port)["infra_inference_inflight_requests"] == 0, timeout_s=2)
        i, fresh = _echo(port, 2)
        assert fresh.status == 200
        _assert_correct(i, fresh)


def test_a_predict_stuck_past_its_deadline_turns_readiness_then_liveness_false() -> None:
    user_model.RELEASE.clear()
    with server_in_thread(model="tests.runtime.server.user_model:Wedged", model_name="echo", max_concurrency=1,
                          timeout_s=0.5) as (
            port, _):
        try:
            with ThreadPoolExecutor(2) as pool:
                stuck = pool.submit(_echo, port, 1)
                wait_until(lambda: scrape(port)["infra_inference_inflight_requests"] == 1)
                queued = pool.submit(_echo, port, 2)  # times out while still queued
                assert stuck.result()[1].status == 504 and queued.result()[1].status == 504
            # The call on its thread cannot be stopped: it keeps the only slot, for nobody;
            # the queued request left the queue at its deadline.
            metrics = scrape(port)
            assert metrics["infra_inference_inflight_requests"] == 1 and metrics["infra_inference_queue_depth"] == 0
            assert request(port, "GET", "/readyz").status == 503
            assert request(port, "GET", "/healthz").status == 200  # slow, maybe; not wedged yet
            wait_until(lambda: request(port, "GET", "/healthz").status == 503, timeout_s=3)
        finally:
            user_model.RELEASE.set()
        wait_until(lambda: request(port, "GET", "/readyz").status == 200)
        assert request(port, "GET", "/healthz").status == 200
        assert scrape(port)["infra_inference_inflight_requests"] == 0


def test_startupz_answers_only_once_the_model_has_loaded() -> None:
    user_model.LOAD.clear()
    server = ServerProcess("--model", "tests.runtime.server.user_model:SlowLoad")
    try:
        assert request(server.port, "GET", "/healthz").status == 200  # alive from the start
        assert request(server.port, "GET", "/startupz").status == 503
    finally:
        server.kill()
    with server_in_thread(model="tests.runtime.server.user_model:Doubler", drain_grace_s=3) as (port, srv):
        assert request(port, "GET", "/startupz").json() == {"loaded": True}
        srv.begin_drain()
        wait_until(lambda: request(port, "GET", "/readyz").status == 503)
        assert request(port, "GET", "/startupz").status == 200  # draining is not loading
