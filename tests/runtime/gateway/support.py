"""A real gateway on 127.0.0.1 in a thread, in front of real model servers."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from infra_inference.runtime.discovery.base import Publish
from infra_inference.runtime.gateway import GatewayApp, GatewayConfig, GatewayServer
from tests.runtime.server.support import request, wait_until
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


class Gateway(NamedTuple):
    port: int  # the service port: everything on it is proxied
    admin: int  # health, metrics, activator
    app: GatewayApp


@contextmanager
def serving(server: GatewayServer, join_s: float = 15) -> Iterator[Gateway]:
    """Run a gateway server on two free 127.0.0.1 ports in a thread, until the block ends."""
    sockets = [socket.socket(), socket.socket()]
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    port, admin = (s.getsockname()[1] for s in sockets)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets[:1], "admin_sockets": sockets[1:]},
                              daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started and request(admin, "GET", "/readyz").status == 200)
        yield Gateway(port, admin, server.app)
    finally:
        server.stop()
        thread.join(timeout=join_s)
        for sock in sockets:
            sock.close()


@contextmanager
def gateway_in_thread(cfg: GatewayConfig, discovery: Any = None, seed: int | None = None) -> Iterator[Gateway]:
    app = GatewayApp(cfg, discovery=discovery, rng=random.Random(seed) if seed is not None else None)
    with serving(GatewayServer(app, cfg)) as gateway:
        yield gateway


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    return free_ports(1)[0]
