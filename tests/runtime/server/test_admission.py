"""Overload, timeouts and drain against real servers: refuse early, never lose an accepted request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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


def test_request_past_timeout_gets_504_and_its_slot_frees_when_the_model_returns() -> None:
    with server_in_thread(model="echo", max_concurrency=1, max_queue=4, timeout_s=0.3) as (port, _):
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(_echo, port, 1, 800.0)  # holds the only slot past its deadline
            wait_until(lambda: scrape(port)["infra_inference_inflight_requests"] == 1)
            queued = pool.submit(_echo, port, 2)  # times out while still queued
            assert slow.result()[1].status == 504
            assert queued.result()[1].status == 504
        # The timed-out queued request left the queue at once; the model call keeps its
        # slot until it returns (a GPU kernel cannot be recalled), then the slot is free.
        assert scrape(port)["infra_inference_queue_depth"] == 0
        wait_until(lambda: scrape(port)["infra_inference_inflight_requests"] == 0)
        i, fresh = _echo(port, 3)
        assert fresh.status == 200
        _assert_correct(i, fresh)
        assert scrape(port)['infra_inference_requests_total{code="504"}'] == 2


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
