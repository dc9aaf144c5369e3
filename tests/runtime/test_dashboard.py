"""Every query of the Grafana dashboard names metrics, and labels, that a running stack exports."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from types import SimpleNamespace
from typing import Any

import aiohttp
import openai
import promql_parser
from prometheus_client import CollectorRegistry, generate_latest

from infra_inference.render import render_stack
from infra_inference.runtime.metrics import prom
from infra_inference.runtime.autoscaler.collect import HttpSource
from infra_inference.runtime.autoscaler.loop import Autoscaler
from infra_inference.runtime.server.gpu_metrics import GpuCollector
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.wire import scrape
from tests.runtime.autoscaler.test_autoscaler import FakeActuator
from tests.runtime.gateway.support import backend, config, gateway_in_thread
from tests.runtime.server.support import request, server_in_thread

DASHBOARD = json.loads((resources.files("infra_inference.render") / "dashboards" / "infra-inference.json").read_text())
# Labels the exporters do not set: the scrape contract's target labels (wire/scrape.py), Prometheus'
# own `job` and `instance`, and a histogram bucket's `le`.
TARGET_LABELS = {*scrape.TARGET_LABELS, "job", "instance", "le"}


def queries() -> list[str]:
    out = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":  # label_values(<selector>, <label>): the selector is the query
            out.append(variable["query"]["query"].removeprefix("label_values(").rsplit(",", 1)[0])
    return out


def selectors(query: str) -> list[Any]:
    # Grafana fills $__rate_interval before Prometheus sees the query; the parser needs a duration there.
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(query.replace("$__rate_interval", "5m")),
                       lambda node: found.append(node) if isinstance(node, promql_parser.VectorSelector) else None)
    return found


class _FakeNvml:
    """NVML as the GPU collector calls it, for one GPU at 30 % and 2 GiB (no GPU on this machine)."""

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> SimpleNamespace:  # noqa: N802 (NVML's names)
        return SimpleNamespace(gpu=30)

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(used=2 * 2**30)


def scraped() -> prom.Samples:
    """The samples of a gateway, a tiny-lm replica behind it, an autoscaler and the GPU collector, merged."""
    texts = []
    with server_in_thread(model="tiny-lm") as (rport, _):
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"])])) as (gport, admin, _):
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{gport}/v1", api_key="unused", max_retries=0)
            client.completions.create(model="tiny-lm", prompt="a", max_tokens=4)
            for _ in client.completions.create(model="tiny-lm", prompt="a", max_tokens=4, stream=True,
                                               stream_options={"include_usage": True}):
                pass
            texts += [request(admin, "GET", "/metrics").body.decode(), request(rport, "GET", "/metrics").body.decode()]

            async def tick() -> bytes:
                async with aiohttp.ClientSession() as session:
                    gateway = f"http://127.0.0.1:{admin}"
                    actuator = FakeActuator(current=1)
                    source = HttpSource(session, lambda: [gateway], actuator.ready_urls)
                    scaler = Autoscaler(ScalingSpec(target=4), ["svc"], actuator, source, lambda: [gateway])
                    await scaler.tick()
                    return generate_latest(scaler.registry)

            texts.append(asyncio.run(tick()).decode())
    gpu = CollectorRegistry()
    gpu.register(GpuCollector(_FakeNvml(), [object()]))
    texts.append(generate_latest(gpu).decode())
    samples: prom.Samples = {}
    for text in texts:
        for name, values in prom.parse(text).items():
            samples.setdefault(name, []).extend(values)
    return samples


def test_every_dashboard_query_parses_and_names_exported_metrics_and_labels() -> None:
    samples = scraped()
    checked = set()
    for query in queries():
        for selector in selectors(query):
            assert selector.name in samples, f"{selector.name} (in {query!r}) is exported by nothing we run"
            exported = {label for labels, _ in samples[selector.name] for label in labels}
            for matcher in selector.matchers.matchers:
                assert matcher.name in exported | TARGET_LABELS, f"{selector.name} has no label {matcher.name}"
            checked.add(selector.name)
    # What the issue asks the dashboard to show, each there.
    assert {"infra_inference_desired_replicas", "infra_inference_ready_replicas", "infra_inference_arrivals_total",
            "infra_inference_queue_depth", "infra_inference_request_duration_seconds_bucket",
            "infra_inference_time_to_first_token_seconds_bucket", "infra_inference_requests_total",
            "infra_inference_gpu_utilization_ratio", "infra_inference_gpu_memory_used_bytes",
            "infra_inference_model_load_seconds", "infra_inference_generated_tokens_total"} <= checked


def test_the_platform_ships_the_dashboard_to_grafanas_sidecar() -> None:
    [cm] = [o for o in render_stack({"platform": {}}) if o["metadata"]["name"] == "infra-inference-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["infra-inference.json"]) == DASHBOARD
    assert not [o for o in render_stack({"platform": {"install_grafana_dashboard": False}})
                if o["metadata"]["name"] == "infra-inference-dashboard"]
