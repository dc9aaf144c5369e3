"""A real gateway on 127.0.0.1 in a thread, in front of real model servers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra_inference.runtime.discovery.base import Publish
from infra_inference.runtime.gateway import GatewayApp, GatewayConfig, GatewayServer
from tests.runtime.server.support import running_in_thread
from tests.support.ports import free_ports


class ManualDiscovery:
    """Replicas as the test says: `set(deployment, addresses)` from any thread."""

    def __init__(self, initial: dict[str, list[str]] | None = None) -> None:
        self._initial = initial or {}
        self._publish: Publish | None = None
        self._loop: Any = None

    async def run(self, publish: Publish) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._publish = publish
        for deployment, addresses in self._initial.items():
            publish(deployment, addresses)

    def set(self, deployment: str, addresses: list[str]) -> None:
        assert self._publish is not None and self._loop is not None
        self._loop.call_soon_threadsafe(self._publish, deployment, addresses)


def config(backends: list[dict[str, Any]], **overrides: Any) -> GatewayConfig:
    fields: dict[str, Any] = {"service": "svc", "host": "127.0.0.1", "port": 0, "timeout_s": 10, "max_queue": 64,
                              "discovery": "static", "backends": backends}
    fields.update(overrides)
    return GatewayConfig.model_validate(fields)


def backend(deployment: str = "svc", **overrides: Any) -> dict[str, Any]:
    return {"variant": "main", "deployment": deployment, "max_concurrency": 4, **overrides}


@contextmanager
def gateway_in_thread(cfg: GatewayConfig, discovery: Any = None, seed: int | None = None
                      ) -> Iterator[tuple[int, GatewayApp]]:
    app = GatewayApp(cfg, discovery=discovery, rng=random.Random(seed) if seed is not None else None)
    server = GatewayServer(app, cfg)
    with running_in_thread(server, server.stop, join_s=15) as port:
        yield port, app


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    return free_ports(1)[0]
