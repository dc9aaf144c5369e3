"""The scrape contract (wire/scrape.py), end to end: every query render/ emits selects series a running stack exports.

The stack is rendered, its gateway, replica and autoscaler run on 127.0.0.1
from the rendered configuration, each is scraped where its pod's annotations
say, and the scrape's target labels are attached as Prometheus does (no
Prometheus here): `namespace` and `pod`, an exported label of the same name
renamed `exported_<name>`. Then every selector of every rendered query (KEDA
triggers, the HPA adapter's rules, the dashboard's panels) must select series,
and the ones scoped to the replicas' pods only the replicas'.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client import start_http_server

from infra_inference.render import render_stack
from infra_inference.render.scrape import SCRAPED_COMPONENTS
from infra_inference.runtime.autoscaler.collect import HttpSource
from infra_inference.runtime.autoscaler.loop import Autoscaler
from infra_inference.runtime.gateway import GatewayConfig
from infra_inference.runtime.metrics import prom
from infra_inference.runtime.metrics.identity import identified
from infra_inference.wire import metrics
from infra_inference.wire.names import GATEWAY_ADMIN_PORT, GATEWAY_CONFIG, GATEWAY_PORT, POLICY_CONFIG
from infra_inference.wire.policy import AutoscalerConfig
from infra_inference.wire.scrape import PATH_ANNOTATION, PORT_ANNOTATION, SCRAPE_ANNOTATION, TARGET_LABELS
from tests.runtime.autoscaler.test_autoscaler import FakeActuator
from tests.runtime.gateway.support import gateway_in_thread
from tests.runtime.server.support import post, request, server_in_thread, v2_body
from tests.test_docs import blocks

NAMESPACE, SERVICE = "apps", "chat"
SERVICE_ARGS: dict[str, Any] = {"namespace": NAMESPACE, "model": {"uri": "s3://models/chat", "format": "safetensors"},
                                "runtime": {"max_concurrency": 4, "max_queue": 16}}
# What a replica-metric trigger reads: a gauge every replica exports (vLLM's num_requests_waiting, in a cluster).
REPLICA_GAUGE = metrics.QUEUE_DEPTH
DASHBOARD = json.loads((resources.files("infra_inference.render") / "dashboards" / "infra-inference.json").read_text())
Series = tuple[str, dict[str, str]]


def stack(**autoscale: Any) -> list[dict[str, Any]]:
    return render_stack({"services": {SERVICE: {**SERVICE_ARGS, "autoscale": {"max_replicas": 4, **autoscale}}}})


def pod_name(deployment: str) -> str:
    """A pod of `deployment` as Kubernetes names it: <deployment>-<template hash>-<suffix>."""
    return f"{deployment}-7d9f8c6b5-x2x4q"


def scraped_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """{pod name: its template's annotations} for every Deployment whose pods ask to be scraped."""
    out = {}
    for o in objects:
        if o["kind"] == "Deployment":
            annotations = o["spec"]["template"]["metadata"].get("annotations", {})
            if annotations.get(SCRAPE_ANNOTATION) == "true":
                out[pod_name(o["metadata"]["name"])] = annotations
    return out


def as_stored(text: str, pod: str) -> list[Series]:
    """A /metrics body as Prometheus stores it from pod `pod` (honor_labels false, its default)."""
    target = {"namespace": NAMESPACE, "pod": pod}
    assert set(target) == set(TARGET_LABELS)
    out = []
    for name, samples in prom.parse(text).items():
        for labels, _ in samples:
            renamed = {f"exported_{k}" if k in target else k: v for k, v in labels.items()}
            out.append((name, {**renamed, **target}))
    return out


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@contextmanager
def running_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Series]]:
    """The rendered (native engine) service's processes on 127.0.0.1, after one request; their scraped series."""
    objects = stack()
    replica = one(objects, "Deployment", SERVICE)["spec"]["template"]["spec"]["containers"][0]
    for e in replica["env"]:
        monkeypatch.setenv(e["name"], e["value"])  # the rendered environment, as the pod gets it
    # ...but an echo model: no weights to fetch.
    with server_in_thread(model="echo", model_uri="", cache_dir=str(tmp_path)) as (rport, _):
        rendered = GatewayConfig.model_validate_json(
            one(objects, "ConfigMap", f"{SERVICE}-gateway")["data"][GATEWAY_CONFIG])
        gw = rendered.model_copy(update={"host": "127.0.0.1", "port": 0, "admin_port": 0, "discovery": "static",
                                         "backends": [b.model_copy(update={"endpoints": [f"127.0.0.1:{rport}"]})
                                                      for b in rendered.backends]})
        with gateway_in_thread(gw) as (gport, admin, _):
            assert post(gport, f"/v2/models/{SERVICE}/infer", v2_body([1.0, 2.0])).status == 200  # the rendered name
            policy = AutoscalerConfig.model_validate_json(
                one(objects, "ConfigMap", f"{SERVICE}-autoscaler")["data"][POLICY_CONFIG])
            registry = asyncio.run(_ticked(policy, admin))
            httpd, _thread = start_http_server(0, addr="127.0.0.1", registry=identified(registry, policy.service))
            try:
                # Each pod's rendered port -> where that process listens here.
                local = {f"{SERVICE}-gateway": {GATEWAY_PORT: gport, GATEWAY_ADMIN_PORT: admin},
                         SERVICE: {int(replica["ports"][0]["containerPort"]): rport},
                         f"{SERVICE}-autoscaler": {policy.metrics_port: httpd.server_port}}
                series: list[Series] = []
                for pod, annotations in scraped_pods(objects).items():
                    deployment = pod.rsplit("-", 2)[0]
                    port = local[deployment][int(annotations[PORT_ANNOTATION])]
                    reply = request(port, "GET", annotations[PATH_ANNOTATION])
                    assert reply.status == 200, f"{pod}: {annotations} -> {reply.status}"
                    series += as_stored(reply.body.decode(), pod)
                yield series
            finally:
                httpd.shutdown()


async def _ticked(policy: AutoscalerConfig, admin: int) -> Any:
    async with aiohttp.ClientSession() as session:
        gateway = f"http://127.0.0.1:{admin}"
        actuator = FakeActuator(current=1)
        scaler = Autoscaler(policy.policy, policy.deployments, actuator,
                            HttpSource(session, lambda: [gateway], actuator.ready_urls), lambda: [gateway])
        await scaler.tick()
        return scaler.registry


def keda_queries() -> dict[str, str]:
    out = {}
    for label, autoscale in {
        "concurrency": {"metric": "concurrency"}, "throughput": {"metric": "throughput", "target": 20},
        "latency": {"metric": "latency", "target": 200},
        "first-token latency": {"metric": "latency", "latency_of": "first-token", "target": 200},
        "replica metric": {"metric": "custom", "target": 2, "custom": {"replica_metric": REPLICA_GAUGE}},
    }.items():
        (scaled,) = [o for o in stack(engine="keda", **autoscale) if o["kind"] == "ScaledObject"]
        out[f"KEDA {label}"] = scaled["spec"]["triggers"][0]["metadata"]["query"]
    return out


def adapter_queries() -> dict[str, str]:
    """The HPA adapter's rules (sdk-docs/autoscaling.md) as it runs them for the HPA's pods."""
    replica_pods = f'namespace="{NAMESPACE}",pod=~"{pod_name(SERVICE)}"'
    out = {}
    for m in metrics.HPA_PODS_METRICS.values():
        if m.series == metrics.DCGM_GPU_UTIL:
            continue  # NVIDIA's exporter, not ours
        out[f"HPA {m.name} series"] = m.rule.replace("<<.Series>>", m.series).replace(
            "<<.LabelMatchers>>", replica_pods).replace("<<.GroupBy>>", "pod")
    return out


def dashboard_queries() -> dict[str, str]:
    """Every panel, with the variables set as Grafana would for this service ($__rate_interval a duration)."""
    filled = {"$namespace": NAMESPACE, "$deployment": SERVICE, "$__rate_interval": "1m"}
    out = {}
    for p in DASHBOARD["panels"]:
        for i, t in enumerate(p["targets"]):
            expr = t["expr"]
            for variable, value in filled.items():
                expr = expr.replace(variable, value)
            out[f"dashboard {p['title']!r} #{i}"] = expr
    return out


def selectors(query: str) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(query),
                       lambda node: found.append(node) if isinstance(node, promql_parser.VectorSelector) else None)
    return found


def selects(selector: Any, series: Series, any_value: frozenset[str] = frozenset()) -> bool:
    """Whether a vector selector's name and label matchers select `series` (PromQL: regexes anchored, absent = "").

    A label in `any_value` need only be there: a status code's series exists once a request was answered so.
    """
    name, labels = series
    if selector.name and selector.name != name:
        return False
    for m in selector.matchers.matchers:
        value, op = labels.get(m.name, ""), m.op
        if m.name in any_value:
            ok = m.name in labels
        elif op == promql_parser.MatchOp.Equal:
            ok = value == m.value
        elif op == promql_parser.MatchOp.NotEqual:
            ok = value != m.value
        else:
            ok = (re.fullmatch(m.value, value) is not None) == (op == promql_parser.MatchOp.Re)
        if not ok:
            return False
    return True


def test_the_matcher_evaluator_reads_promql_as_prometheus_does() -> None:
    (s,) = selectors('x{a="b",c=~"d|e",f!="",g!~"h.*"}')
    assert selects(s, ("x", {"a": "b", "c": "e", "f": "1", "g": "i"}))
    assert not selects(s, ("x", {"a": "b", "c": "de", "f": "1"}))  # regexes match the whole value
    assert not selects(s, ("x", {"a": "b", "c": "d"}))  # f absent is f=""
    assert not selects(s, ("y", {"a": "b", "c": "d", "f": "1"}))


def test_every_rendered_query_selects_series_the_running_stack_exports(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    queries = {**keda_queries(), **adapter_queries(), **dashboard_queries()}
    with running_stack(tmp_path, monkeypatch) as series:
        pods = {labels["pod"] for _, labels in series}
        assert pods == {pod_name(d) for d in (SERVICE, f"{SERVICE}-gateway", f"{SERVICE}-autoscaler")}
        unselected = []
        for where, query in queries.items():
            for selector in selectors(query):
                if selector.name == metrics.DCGM_GPU_UTIL:
                    continue
                if selector.name in (metrics.GPU_UTILIZATION, metrics.GPU_MEMORY_USED):
                    continue  # NVML's, only where a GPU is (tests/runtime/test_dashboard.py fakes one)
                if not any(selects(selector, s, frozenset({"code"})) for s in series):
                    unselected.append(f"{where}: {selector} in {query}")
        assert not unselected, "selecting nothing a running stack exports:\n" + "\n".join(unselected)


def test_replica_scoped_queries_select_the_replicas_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod-scoped trigger sums over the service's replicas: not its gateway's or autoscaler's series too."""
    query = keda_queries()["KEDA replica metric"]
    with running_stack(tmp_path, monkeypatch) as series:
        (selector,) = selectors(query)
        chosen = {labels["pod"] for s in series if selects(selector, s) for _, labels in [s]}
        assert chosen == {pod_name(SERVICE)}, query
        # The gateway also exports the gauge, per backend: a gateway-scoped query takes the gateway's alone.
        (selector,) = selectors(keda_queries()["KEDA concurrency"])[:1]
        assert {labels["pod"] for s in series if selects(selector, s) for _, labels in [s]} == {
            pod_name(f"{SERVICE}-gateway")}


def test_every_pod_serving_metrics_is_annotated_with_a_port_its_containers_declare() -> None:
    objects = stack()
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    annotated = {pod.rsplit("-", 2)[0]: a for pod, a in scraped_pods(objects).items()}
    assert set(annotated) == set(deployments)  # the gateway, the replicas and the autoscaler
    for name, annotations in annotated.items():
        declared = {p["containerPort"] for c in deployments[name]["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])}
        assert int(annotations[PORT_ANNOTATION]) in declared, name
    assert annotated[f"{SERVICE}-gateway"][PORT_ANNOTATION] == str(GATEWAY_ADMIN_PORT)  # not the proxied port


def test_pod_monitors_only_when_the_platform_asks() -> None:
    kinds = lambda doc: [o["metadata"]["name"] for o in render_stack(doc) if o["kind"] == "PodMonitor"]  # noqa: E731
    assert kinds({"platform": {}}) == []  # the CRD may not exist
    assert kinds({"platform": {"install_pod_monitor": True}}) == ["infra-inference"]
    assert kinds({"platform": {"install_pod_monitor": True, "install_dcgm_exporter": True}}) == [
        "infra-inference", "dcgm-exporter"]


def test_the_pod_monitor_and_the_documented_scrape_job_relabel_alike() -> None:
    """Both read the same annotations and attach the target labels the queries use."""
    (monitor,) = [o for o in render_stack({"platform": {"install_pod_monitor": True}})
                  if o["kind"] == "PodMonitor"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (code,) = [c for where, c in blocks("yaml", "prometheus") if where.startswith("autoscaling.md")]
    (job,) = [j for j in yaml.safe_load(code)["scrape_configs"] if j["job_name"] == "infra-inference"]
    snake = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    # The operator attaches namespace and pod on its own; the job must say so. The PodMonitor's labeldrop
    # undoes labels the operator adds and a plain job does not.
    assert {r.get("target_label") for r in job["relabel_configs"]} >= set(TARGET_LABELS)
    for rule in endpoint["relabelings"]:
        if rule["action"] != "labeldrop":
            assert {snake.get(k, k): v for k, v in rule.items()} in job["relabel_configs"], rule
    # ...of the pods the PodMonitor selects.
    assert {"action": "keep", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "regex": "|".join(SCRAPED_COMPONENTS)} in job["relabel_configs"]
    assert monitor["spec"]["selector"]["matchExpressions"][0]["values"] == SCRAPED_COMPONENTS
    assert not job.get("honor_labels", False)


def test_dcgm_labels_each_gpus_series_with_the_pod_using_it() -> None:
    """GPU-utilization triggers select DCGM's series by `namespace` and `pod`: the exporter must know them."""
    (ds,) = [o for o in render_stack({"platform": {"install_dcgm_exporter": True}})
             if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "dcgm-exporter"]
    pod = ds["spec"]["template"]["spec"]
    (exporter,) = pod["containers"]
    assert {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"} in exporter["env"]
    # ...from the kubelet's pod-resources socket, mounted from the node.
    (mount,) = [m for m in exporter["volumeMounts"] if m["mountPath"] == "/var/lib/kubelet/pod-resources"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"]["path"] == mount["mountPath"] and mount["readOnly"]
