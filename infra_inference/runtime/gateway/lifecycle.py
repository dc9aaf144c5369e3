"""Run the gateway on the model server's HTTP/1.1 protocol; SIGTERM drains it like a replica.

Two listeners: the service port (every request proxied) and the admin port
(health, metrics, activator). On SIGTERM (or `stop()`), as the replicas do:
readiness turns 503 at once while the listeners stay open for
`drain_grace_s`, so a client that resolved the gateway a moment ago is still
answered (each answer now says `Connection: close`, so its next request goes
through the Service to another gateway). Then both close, idle connections
close, and each busy connection closes once its answer is written, a stream
once it has ended. A request can take `timeout_s` (queueing included) until
its answer starts, so the gateway waits that long plus a margin, then cuts
what is left (a stream still open, a client not reading) and exits. The
rendered pod has a 5 s preStop sleep before the SIGTERM and
`5 + timeout_s + 5` s in all: the gateway needs at most
`drain_grace_s + timeout_s + 3` of them after the sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from infra_inference.runtime.gateway.app import GatewayApp
from infra_inference.runtime.transport import http1
from infra_inference.runtime.transport.http1 import Connections, HttpConnection
from infra_inference.wire.gateway import GatewayConfig

log = logging.getLogger(__name__)

# Clients' idle keep-alive connections are closed after this long (uvicorn's default was 5 s;
# load balancers in front of a gateway keep theirs for 60 s and more, so stay above them).
KEEP_ALIVE_S = 75.0
# Beyond timeout_s, how long a shutdown waits for the last answers to be written.
SHUTDOWN_MARGIN_S = 3.0
# The admin port's routes take no body.
ADMIN_MAX_BODY_BYTES = 1024


class GatewayServer:
    """The gateway app behind a listener, with graceful shutdown.

    Args:
        app: The routes, queue and upstream pool.
        config: Where to listen, body limit, timeout.
    """

    def __init__(self, app: GatewayApp, config: GatewayConfig) -> None:
        self.app = app
        self.config = config
        self.started = False
        self.port = 0  # the service port and the admin port, once listening
        self.admin_port = 0
        self._connections = Connections(http1.Limits(max_body_bytes=config.max_request_bytes,
                                                     idle_timeout_s=KEEP_ALIVE_S), budget=app.budget)
        self._admin_connections = Connections(http1.Limits(max_body_bytes=ADMIN_MAX_BODY_BYTES,
                                                           idle_timeout_s=KEEP_ALIVE_S))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def run(self, sockets: list[socket.socket] | None = None,
            admin_sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped (blocking), on uvloop when it is installed."""
        http1.run(self.serve(sockets, admin_sockets))

    async def serve(self, sockets: list[socket.socket] | None = None,
                    admin_sockets: list[socket.socket] | None = None) -> None:
        self._stop = stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await self.app.start()

        def connection() -> HttpConnection:
            return HttpConnection(self.app.respond, self._connections, keep_headers=self.app.headers,
                                  forward_headers=True, on_gone=self.app.forget)

        def admin_connection() -> HttpConnection:
            return HttpConnection(self.app.respond_admin, self._admin_connections)

        listeners = await http1.listen(connection, self.config.host, self.config.port, sockets)
        admin = await http1.listen(admin_connection, self.config.host, self.config.admin_port, admin_sockets)
        http1.on_stop_signals(lambda sig: self._drain())
        self.port, self.admin_port = http1.addresses(listeners)[0][1], http1.addresses(admin)[0][1]
        for host, port in http1.addresses(listeners):
            log.info("infra-inference gateway for %r, running on http://%s:%d (admin port %d)", self.config.service,
                     host, port, self.admin_port)
        self.started = True
        try:
            await stop.wait()
        finally:
            http1.stop_accepting(listeners, self._connections)
            http1.stop_accepting(admin, self._admin_connections)
            self.app.end_long_polls()
            await http1.close_all(self._connections, self.config.timeout_s + SHUTDOWN_MARGIN_S)
            self._admin_connections.abort()
            await self.app.stop()

    def stop(self) -> None:
        """Begin the graceful shutdown (as SIGTERM does); callable from any thread."""
        loop = self._loop
        if loop is not None and self._stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if not self.app.start_drain():
            return
        self._connections.closing = True
        assert self._loop is not None and self._stop is not None
        self._loop.call_later(self.config.drain_grace_s, self._stop.set)
