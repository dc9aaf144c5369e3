"""`infra-inference autoscaler --config policy.json`: wire collectors and an actuator to the tick loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import typer
from prometheus_client import start_http_server

from infra_inference.runtime.actuators.base import Actuator
from infra_inference.runtime.autoscaler.collect import HttpSource, prometheus_query, replica_total
from infra_inference.runtime.autoscaler.loop import Autoscaler
from infra_inference.runtime.metrics.identity import identified
from infra_inference.wire import metrics
from infra_inference.wire.names import gateway_admin_port, gateway_service, replicas_service
from infra_inference.wire.policy import AutoscalerConfig

log = logging.getLogger(__name__)
GATEWAY_KEY = ""  # the gateway's own endpoints, beside each deployment's, in one address book


def replica_metrics_url(base_url: str, cfg: AutoscalerConfig, deployment: str) -> str:
    """A ready replica's metrics URL: its address on its metrics port (Triton: 8002), the runtime's path."""
    url = urlparse(base_url)
    host = f"[{url.hostname}]" if ":" in (url.hostname or "") else url.hostname
    return f"{url.scheme}://{host}:{cfg.replica_metrics_port(deployment)}{cfg.replica_metrics_path}"


async def _local(cfg: AutoscalerConfig) -> tuple[Actuator, dict[str, list[str]]]:
    from infra_inference.runtime.actuators.local import LocalActuator

    assert cfg.local is not None
    actuator = LocalActuator(dict.fromkeys(cfg.deployments, cfg.local))
    await actuator.start()
    book = {GATEWAY_KEY: [cfg.gateway_url] if cfg.gateway_url else []}
    return actuator, book


def discovery_services(cfg: AutoscalerConfig) -> dict[str, tuple[str, int]]:
    """{Service: (address-book key, port)}: each deployment's replicas on its own port, and the gateway's pods."""
    services = {replicas_service(d): (d, cfg.replica_port(d)) for d in cfg.deployments}
    gw = gateway_service(cfg.gateway_url) if cfg.gateway_url else None
    if gw is not None:
        # Each gateway pod, found through the Service's EndpointSlices, on its admin port (not in the Service).
        services[gw] = (GATEWAY_KEY, gateway_admin_port(cfg.gateway_url or ""))
    return services


async def _kubernetes(cfg: AutoscalerConfig) -> tuple[Actuator, dict[str, list[str]]]:
    """Scale subresource; gateway pods and ready replicas from EndpointSlices (all gateway replicas, not one)."""
    from infra_inference.runtime.actuators.kubernetes import KubernetesActuator
    from infra_inference.runtime.discovery.endpointslices import EndpointSliceDiscovery

    services = discovery_services(cfg)
    # The gateway's admin port is not in its Service: the slices' port (the proxy's) must not replace it,
    # or the activator long-poll and the metrics scrape go through the proxy and wait for replicas.
    gateway = frozenset(s for s, (key, _) in services.items() if key == GATEWAY_KEY)
    discovery = EndpointSliceDiscovery.in_cluster(cfg.namespace, services, gateway)
    # A gateway outside the cluster's Services (not watched) is scraped at its URL.
    watched = any(key == GATEWAY_KEY for key, _ in services.values())
    book: dict[str, list[str]] = {GATEWAY_KEY: [cfg.gateway_url] if cfg.gateway_url and not watched else []}

    def publish(key: str, addresses: list[str]) -> None:
        book[key] = [f"http://{a}" for a in addresses]

    asyncio.get_running_loop().create_task(discovery.run(publish))
    return KubernetesActuator(discovery.api_client, cfg.namespace, book), book


async def run(cfg: AutoscalerConfig) -> None:
    actuator, book = await (_local(cfg) if cfg.local is not None else _kubernetes(cfg))
    async with aiohttp.ClientSession() as session:
        custom = None
        if cfg.metric == "custom" and cfg.custom is not None:
            query, replica_metric = cfg.custom.query, cfg.custom.replica_metric

            async def custom(deployment: str) -> float | None:
                if replica_metric is not None:
                    urls = [replica_metrics_url(u, cfg, deployment) for u in actuator.ready_urls(deployment)]
                    return await replica_total(session, urls, replica_metric)
                assert query is not None  # one of the two, by CustomMetricSpec
                return await prometheus_query(session, cfg.prometheus_url, query)

        latency = metrics.TIME_TO_FIRST_TOKEN if cfg.latency_of == "first-token" else metrics.REQUEST_DURATION
        source = HttpSource(session, lambda: book[GATEWAY_KEY], actuator.ready_urls, custom, latency)
        scaler = Autoscaler(cfg.policy, cfg.deployments, actuator, source, lambda: book[GATEWAY_KEY], cfg.tick_s,
                            fallback=cfg.fallback)
        start_http_server(cfg.metrics_port, registry=identified(scaler.registry, cfg.service))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(scaler.run())
        await stop.wait()
        task.cancel()
        log.info("stopping: retiring local replicas" if cfg.local else "stopping")
        await actuator.close()


def autoscaler(
    config: Path = typer.Option(..., "--config", help="policy.json, as `infra-inference render` writes it."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Collect -> decide -> actuate, every tick: scale a service's Deployments (or local replicas)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(AutoscalerConfig.model_validate_json(config.read_text())))
