"""/metrics parsed back with prometheus_client: names, gauges under load, load phases, no fake GPU."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from infra_inference.runtime.server.gpu_metrics import GpuCollector
from tests.runtime.server.support import post, scrape, server_in_thread, v2_body, wait_until


def test_inflight_and_queue_gauges_move_under_load_and_return_to_zero() -> None:
    with server_in_thread(model="echo", max_concurrency=2, max_queue=16) as (port, _):
        idle = scrape(port)
        assert idle["infra_inference_inflight_requests"] == 0 and idle["infra_inference_queue_depth"] == 0
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(post, port, "/v2/models/echo/infer", v2_body([1.0], delay_ms=300)) for _ in range(6)]
            wait_until(
                lambda: (m := scrape(port))["infra_inference_inflight_requests"] == 2
                and m["infra_inference_queue_depth"] == 4
            )
            assert all(f.result().status == 200 for f in futures)
        after = scrape(port)
        assert after["infra_inference_inflight_requests"] == 0 and after["infra_inference_queue_depth"] == 0
        assert after['infra_inference_requests_total{code="200"}'] == 6
        assert after["infra_inference_request_duration_seconds_count"] == 6
        # Queued requests waited for a slot: their durations include it (>= 2 rounds of 300 ms).
        assert after["infra_inference_request_duration_seconds_sum"] >= 6 * 0.3


def test_requests_are_counted_by_status_code() -> None:
    with server_in_thread(model="echo") as (port, _):
        post(port, "/v2/models/echo/infer", v2_body([1.0]))
        post(port, "/v2/models/echo/infer", {"inputs": "nope"})
        post(port, "/v2/models/missing/infer", v2_body([1.0]))
        metrics = scrape(port)
        assert metrics['infra_inference_requests_total{code="200"}'] == 1
        assert metrics['infra_inference_requests_total{code="400"}'] == 1
        assert metrics['infra_inference_requests_total{code="404"}'] == 1


def test_model_load_phases_are_exported() -> None:
    with server_in_thread(model="echo") as (port, _):
        metrics = scrape(port)
        assert metrics['infra_inference_model_load_seconds{phase="total"}'] >= 0


def test_gpu_metrics_are_absent_without_a_gpu() -> None:
    with server_in_thread(model="echo") as (port, _):
        names = scrape(port)
        gpu_present = GpuCollector.detect() is not None
        assert any(n.startswith("infra_inference_gpu_utilization_ratio") for n in names) == gpu_present
        assert any(n.startswith("infra_inference_gpu_memory_used_bytes") for n in names) == gpu_present
