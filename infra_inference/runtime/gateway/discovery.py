"""Where the replicas are: static addresses, the local actuator's endpoints file, or EndpointSlices.

Every source reports the same thing, the ready addresses of one Deployment,
through `Publish(deployment, addresses)`; the dispatcher does the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from infra_inference.runtime.gateway.config import GatewayConfig

log = logging.getLogger(__name__)

Publish = Callable[[str, list[str]], None]

# The local actuator rewrites the file within 0.1 s of a replica turning ready;
# a stat every 50 ms keeps the from-zero path short and costs nothing measurable.
FILE_POLL_S = 0.05


class Discovery(Protocol):
    async def run(self, publish: Publish) -> None:
        """Publish the current replicas, then every change, until cancelled."""


class StaticDiscovery:
    def __init__(self, endpoints: dict[str, list[str]]) -> None:
        self._endpoints = endpoints

    async def run(self, publish: Publish) -> None:
        for deployment, addresses in self._endpoints.items():
            publish(deployment, addresses)


def read_endpoints_file(path: Path) -> dict[str, list[str]]:
    """{deployment: [host:port, ...]} as the local actuator wrote it; empty while it does not exist."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {d: list(a) for d, a in doc["deployments"].items()}


def write_endpoints_file(path: Path, endpoints: dict[str, list[str]]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"deployments": endpoints}, sort_keys=True))
    tmp.replace(path)


class FileDiscovery:
    def __init__(self, path: Path, deployments: Iterable[str]) -> None:
        self._path = path
        self._deployments = list(deployments)

    async def run(self, publish: Publish) -> None:
        seen: dict[str, list[str]] | None = None
        while True:
            try:
                current = read_endpoints_file(self._path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("cannot read %s: %s", self._path, exc)
            else:
                if current != seen:
                    for d in self._deployments:
                        publish(d, current.get(d, []))
                    seen = current
            await asyncio.sleep(FILE_POLL_S)


def discovery_for(config: GatewayConfig) -> Discovery:
    if config.discovery == "static":
        return StaticDiscovery({b.deployment: b.endpoints for b in config.backends})
    if config.discovery == "file":
        if config.endpoints_file is None:
            raise ValueError("discovery 'file' needs endpoints_file")
        return FileDiscovery(config.endpoints_file, [b.deployment for b in config.backends])
    from infra_inference.runtime.gateway.endpointslices import EndpointSliceDiscovery

    return EndpointSliceDiscovery.in_cluster(config.namespace, {b.service: (b.deployment, b.port)
                                                                for b in config.backends})
