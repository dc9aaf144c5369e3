"""Scaling on a metric the replicas export themselves (vLLM's requests waiting), through metric 'custom'."""

from __future__ import annotations

import asyncio

import aiohttp

from infra_inference.runtime.autoscaler.cli import replica_metrics_url
from infra_inference.runtime.autoscaler.collect import HttpSource, replica_total
from infra_inference.wire.policy import AutoscalerConfig
from infra_inference.runtime.autoscaler.loop import Autoscaler
from infra_inference.specs.autoscale import ScalingSpec
from tests.runtime.autoscaler.test_autoscaler import FakeActuator, metrics_server
from tests.runtime.gateway.support import closed_port

VLLM = ('# TYPE vllm:num_requests_waiting gauge\n'
        'vllm:num_requests_waiting{model_name="m"} %d\n'
        '# TYPE vllm:gpu_cache_usage_perc gauge\n'
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.5\n')


def test_a_replica_gauge_summed_over_replicas_scales_the_deployment() -> None:
    # Two replicas with 12 and 4 requests waiting, 2 per replica wanted: 16 / 2 = 8 replicas.
    policy = ScalingSpec(metric="custom", custom={"replica_metric": "vllm:num_requests_waiting"}, target=2,
                         max_replicas=20, max_scale_up_rate=10, stable_window_s=5, scale_down_window_s=0)
    with metrics_server([VLLM % 12]) as a, metrics_server([VLLM % 4]) as b:
        actuator = FakeActuator(current=2)

        async def tick() -> None:
            async with aiohttp.ClientSession() as session:
                async def custom(deployment: str) -> float | None:
                    return await replica_total(session, [f"{a}/metrics", f"{b}/metrics"], "vllm:num_requests_waiting")

                gateway = f"http://127.0.0.1:{closed_port()}"  # no gateway reading: custom needs none
                source = HttpSource(session, lambda: [gateway], actuator.ready_urls, custom)
                await Autoscaler(policy, ["svc"], actuator, source, lambda: []).tick()

        asyncio.run(tick())
    assert actuator.scaled == [8]


def test_a_replica_without_the_metric_adds_nothing_and_none_is_no_reading() -> None:
    async def read(urls: list[str]) -> float | None:
        async with aiohttp.ClientSession() as session:
            return await replica_total(session, urls, "vllm:gpu_cache_usage_perc")

    with metrics_server([VLLM % 0]) as vllm, metrics_server(["up 1\n"]) as other:
        assert asyncio.run(read([f"{vllm}/metrics", f"{other}/metrics"])) == 0.5
        assert asyncio.run(read([f"{other}/metrics"])) is None
    assert asyncio.run(read([])) is None


def test_replica_metrics_url_follows_the_runtime_port_and_path() -> None:
    triton = AutoscalerConfig(target=1, deployments=["d"], replica_ports={"d": 8000}, replica_metrics_ports={"d": 8002})
    assert replica_metrics_url("http://10.0.0.7:8000", triton, "d") == "http://10.0.0.7:8002/metrics"
    vllm = AutoscalerConfig(target=1, deployments=["d"], replica_ports={"d": 8000})
    assert replica_metrics_url("http://[fd00::7]:8000", vllm, "d") == "http://[fd00::7]:8000/metrics"
