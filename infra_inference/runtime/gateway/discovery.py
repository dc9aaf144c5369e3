"""Which replica source the gateway watches, as gateway.json says."""

from __future__ import annotations

from pathlib import Path

from infra_inference.runtime.discovery.base import Discovery, StaticDiscovery
from infra_inference.runtime.discovery.endpoints_file import FileDiscovery
from infra_inference.wire.gateway import GatewayConfig


def discovery_for(config: GatewayConfig) -> Discovery:
    if config.discovery == "static":
        return StaticDiscovery({b.deployment: b.endpoints for b in config.backends})
    if config.discovery == "file":
        if config.endpoints_file is None:
            raise ValueError("discovery 'file' needs endpoints_file")
        return FileDiscovery(Path(config.endpoints_file), [b.deployment for b in config.backends])
    from infra_inference.runtime.discovery.endpointslices import EndpointSliceDiscovery

    return EndpointSliceDiscovery.in_cluster(config.namespace, {b.service: (b.deployment, b.port)
                                                                for b in config.backends})
