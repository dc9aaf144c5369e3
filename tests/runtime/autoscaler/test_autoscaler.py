"""The tick loop with fakes at its edges, the collectors against real HTTP, the actuators against an API."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import prometheus_client
import pytest

from infra_inference.render.autoscale import native
from infra_inference.runtime.actuators.base import Replicas
from infra_inference.runtime.actuators.kubernetes import KubernetesActuator
from infra_inference.runtime.autoscaler import Autoscaler, AutoscalerConfig
from infra_inference.decide.autoscaling import Observation
from infra_inference.decide.autoscaling.observe import ObserverState, observe_gateway, quantile
from infra_inference.runtime.autoscaler.collect import MAX_BODY_BYTES, HttpSource
from infra_inference.runtime.discovery.endpointslices import EndpointSliceDiscovery
from infra_inference.runtime.metrics import prom
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.wire.names import gateway_admin_port, gateway_service
from tests.runtime.autoscaler.fake_kube import endpoint_slice, fake_kube
from tests.runtime.gateway.support import backend, closed_port, config, gateway_in_thread
from tests.runtime.gateway.test_gateway import infer
from tests.runtime.server.support import wait_until


class FakeActuator:
    def __init__(self, current: int, ready: int | None = None) -> None:
        self.current = current
        self.ready = current if ready is None else ready
        self.scaled: list[int] = []

    async def replicas(self, deployment: str) -> Replicas:
        return Replicas(self.current, self.ready)

    def ready_urls(self, deployment: str) -> list[str]:
        return []

    async def scale(self, deployment: str, replicas: int) -> None:
        self.scaled.append(replicas)
        self.current = self.ready = replicas

    async def close(self) -> None:
        pass


POLICY = ScalingSpec(metric="concurrency", target=4.0, min_replicas=1, max_replicas=10, stable_window_s=5,
                     scale_down_window_s=0)


def ticks(gateway_url: str, actuator: FakeActuator, n: int, policy: ScalingSpec = POLICY) -> Autoscaler:
    async def run() -> Autoscaler:
        async with aiohttp.ClientSession() as session:
            source = HttpSource(session, lambda: [gateway_url], actuator.ready_urls)
            scaler = Autoscaler(policy, ["svc"], actuator, source, lambda: [gateway_url])
            for _ in range(n):
                await scaler.tick()
            return scaler

    return asyncio.run(run())


def test_unreachable_metrics_hold_and_never_scale_down() -> None:
    actuator = FakeActuator(current=6)
    scaler = ticks(f"http://127.0.0.1:{closed_port()}", actuator, 3)
    assert actuator.scaled == []
    assert "no concurrency reading" in scaler.last["svc"].reason


def test_an_idle_gateway_scales_down_and_the_decision_is_exported() -> None:
    with gateway_in_thread(config([backend(endpoints=[])])) as (_, admin, _):
        actuator = FakeActuator(current=6)
        scaler = ticks(f"http://127.0.0.1:{admin}", actuator, 1)
    assert actuator.scaled == [3]  # max_scale_down_rate 2: halve at most per decision
    exported = prom.parse(prometheus_client.generate_latest(scaler.registry).decode())
    assert prom.total(exported, "infra_inference_desired_replicas", deployment="svc") == 3


def test_queued_requests_at_a_gateway_with_no_replica_scale_from_zero() -> None:
    zero = POLICY.model_copy(update={"min_replicas": 0, "scale_to_zero_after_s": 30})
    with gateway_in_thread(config([backend(endpoints=[])], timeout_s=2)) as (gport, admin, app):
        with ThreadPoolExecutor(9) as pool:
            futures = [pool.submit(infer, gport) for _ in range(9)]
            wait_until(lambda: app.dispatcher.queued == 9)
            actuator = FakeActuator(current=0)
            ticks(f"http://127.0.0.1:{admin}", actuator, 1, zero)
            assert actuator.scaled == [3]  # 9 waiting / 4 per replica
            assert {f.result().status for f in futures} == {504}  # nothing was started for real


def test_throughput_and_latency_come_from_counter_deltas() -> None:
    text_1 = ('infra_inference_requests_total{deployment="svc",code="200"} 100\n'
              'infra_inference_request_duration_seconds_bucket{deployment="svc",le="0.05"} 60\n'
              'infra_inference_request_duration_seconds_bucket{deployment="svc",le="0.1"} 100\n'
              'infra_inference_request_duration_seconds_bucket{deployment="svc",le="+Inf"} 100\n')
    # 60 under 0.05 s, 100 under 0.1 s: p95 = 0.05 + 0.05 x 35/40 = 0.094 s.
    assert quantile(0.95, prom.buckets(prom.parse(text_1), "infra_inference_request_duration_seconds")) \
        == pytest.approx(0.09375)
    assert quantile(0.95, {}) is None


@contextmanager
def metrics_server(texts: list[str]) -> Iterator[str]:
    """Serves `texts` as /metrics, one per scrape, the last one from then on."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (texts.pop(0) if len(texts) > 1 else texts[0]).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def gateway_text(arrivals: int, served: int, served_s: float, queued: int, inflight: int) -> str:
    labels = 'deployment="svc",variant="main"'
    return (f"# TYPE infra_inference_arrivals_total counter\ninfra_inference_arrivals_total{{{labels}}} {arrivals}\n"
            f"# TYPE infra_inference_replica_duration_seconds summary\n"
            f"infra_inference_replica_duration_seconds_count{{{labels}}} {served}\n"
            f"infra_inference_replica_duration_seconds_sum{{{labels}}} {served_s}\n"
            f"infra_inference_queue_depth{{{labels}}} {queued}\ninfra_inference_inflight_requests{{{labels}}} {inflight}\n")


def test_concurrency_is_arrival_rate_times_service_time_and_the_queue_is_work() -> None:
    texts = [gateway_text(100, 90, 9.0, 30, 8),
             gateway_text(300, 190, 19.0, 300, 8),   # +200 arrivals in 2 s, +100 served in 10 s: 0.1 s each
             gateway_text(300, 190, 19.0, 300, 8)]   # nothing arrived or finished (replicas starting)

    async def read_three(url: str) -> list[Observation]:
        async with aiohttp.ClientSession() as session:
            source, state, out = HttpSource(session, lambda: [url], lambda d: []), ObserverState(), []
            for now in (10.0, 12.0, 13.0):
                sample = await source.gateway(["svc"], now)
                obs, state = observe_gateway("concurrency", sample and sample["svc"], state, 1, 1, now)
                out.append(obs)
            return out

    with metrics_server(texts) as url:
        first, second, third = asyncio.run(read_three(url))
    assert (first.value, first.backlog_s, first.queue_only) == (38, None, True)  # first look: the 38 outstanding
    # 100 req/s x 0.1 s = 10 in flight, and 300 queued x 0.1 s = 30 s of work -- not 308 in flight.
    assert (second.value, second.outstanding, second.queue_only) == (pytest.approx(10.0), 308, False)
    assert second.backlog_s == pytest.approx(30.0)
    assert third.value == 0 and third.backlog_s == pytest.approx(30.0)  # the service time remembered: 0.1 s


@pytest.mark.parametrize("body", [
    'infra_inference_inflight_requests{deployment="svc"} garbage\n',  # prometheus_client raises ValueError
    "# " + "x" * (MAX_BODY_BYTES + 10) + "\n",                          # over the size cap
], ids=["unparsable", "oversized"])
def test_a_bad_metrics_body_holds(body: str) -> None:
    with metrics_server([body]) as url:
        actuator = FakeActuator(current=6)
        scaler = ticks(url, actuator, 2)
    assert actuator.scaled == []
    assert "no concurrency reading" in scaler.last["svc"].reason


class BrokenFor(FakeActuator):
    """Raises for one deployment, as an API error for one Deployment would."""

    async def replicas(self, deployment: str) -> Replicas:
        if deployment == "broken":
            raise RuntimeError("the API said no")
        return await super().replicas(deployment)


def test_one_deployments_failure_does_not_skip_the_others() -> None:
    async def run() -> FakeActuator:
        actuator = BrokenFor(current=6)
        with gateway_in_thread(config([backend(endpoints=[])])) as (_, admin, _):
            async with aiohttp.ClientSession() as session:
                source = HttpSource(session, lambda: [f"http://127.0.0.1:{admin}"], actuator.ready_urls)
                await Autoscaler(POLICY, ["broken", "svc"], actuator, source, lambda: []).tick()
        return actuator

    assert asyncio.run(run()).scaled == [3]  # svc, idle, still scaled down after broken failed


def test_policy_json_as_rendered_loads() -> None:
    cm = next(o for o in native("chat-autoscaler", "inference", ["chat", "chat-canary"], POLICY, 5.6,
                                "http://chat-gateway.inference.svc.cluster.local:9090") if o["kind"] == "ConfigMap")
    cfg = AutoscalerConfig.model_validate(json.loads(cm["data"]["policy.json"]))
    assert cfg.deployments == ["chat", "chat-canary"] and cfg.policy.target == 5.6 and cfg.local is None
    assert gateway_service(cfg.gateway_url or "") == "chat-gateway"
    assert gateway_admin_port(cfg.gateway_url or "") == 9090


def test_kubernetes_actuator_reads_and_patches_the_scale_subresource() -> None:
    with fake_kube() as (kube, api):
        kube.replicas["chat"], kube.ready["chat"] = 2, 1
        actuator = KubernetesActuator(api, "inference")
        assert asyncio.run(actuator.replicas("chat")) == Replicas(2, 1)
        asyncio.run(actuator.scale("chat", 5))
        assert [(d, body) for d, _, body in kube.patches] == [("chat", {"spec": {"replicas": 5}})]
        assert asyncio.run(actuator.replicas("chat")).current == 5
        assert asyncio.run(actuator.replicas("missing")) is None  # unreadable: the loop holds


def test_endpointslice_discovery_lists_then_follows_the_watch() -> None:
    with fake_kube() as (kube, api):
        kube.slices["a"] = endpoint_slice("a", "chat-replicas", {"10.0.0.1": True, "10.0.0.2": False,
                                                                  "10.0.0.3": None})
        # Written by someone else than the EndpointSlice controller (a tenant with create rights): ignored.
        kube.slices["rogue"] = endpoint_slice("rogue", "chat-replicas", {"203.0.113.9": True}, managed_by="me")
        kube.watch_events = [{"type": "MODIFIED", "object": endpoint_slice("a", "chat-replicas",
                                                                            {"10.0.0.1": True, "10.0.0.2": True})}]
        seen: list[tuple[str, list[str]]] = []
        discovery = EndpointSliceDiscovery(api, "inference", {"chat-replicas": ("chat", 8080)})

        async def run() -> None:
            task = asyncio.create_task(discovery.run(lambda d, a: seen.append((d, a))))
            deadline = time.monotonic() + 10
            while len(seen) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            task.cancel()

        asyncio.run(run())
        assert seen[:2] == [("chat", ["10.0.0.1:8080", "10.0.0.3:8080"]), ("chat", ["10.0.0.1:8080", "10.0.0.2:8080"])]
        assert any("labelSelector=" in r and "service-name" in r and "managed-by%3Dendpointslice-controller" in r
                   for r in kube.requests)


def test_a_pinned_port_is_kept_over_the_slices_http_port() -> None:
    # The gateway's Service exposes only the proxy (http 8080); its admin port 9090 is reached per pod.
    from types import SimpleNamespace as NS

    from infra_inference.runtime.discovery.endpointslices import ready_addresses

    es = NS(ports=[NS(name="http", port=8080)],
            endpoints=[NS(addresses=["10.0.0.5"], conditions=NS(ready=True))])
    assert ready_addresses(es, 9090) == ["10.0.0.5:8080"]
    assert ready_addresses(es, 9090, pinned=True) == ["10.0.0.5:9090"]
