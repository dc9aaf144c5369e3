"""Process lifecycle: listen, load the model, drain on SIGTERM, exit 0 only when nothing is left.

Drain order on SIGTERM (what Kubernetes sends at pod deletion):
1. readiness turns false and new inference requests get 503 (the gateway
   retries them on another replica), while the socket stays open;
2. every request already accepted is answered, and at least
   ``drain_grace_s`` passes (endpoint removal propagates meanwhile);
3. the listener closes, idle connections close, a connection still receiving
   or answering a request closes after that answer, and the process exits 0.
Every accepted request is answered within ``timeout_s`` (504 at the latest),
so steps 2 and 3 wait at most ``max(drain_grace_s, timeout_s)`` plus
``SHUTDOWN_MARGIN_S`` each; what is still open then (a client sending its
body a byte at a time, or not reading its answer) is cut. The rendered pod
gets SIGTERM after its 5 s preStop sleep and has ``5 + timeout_s + 5`` s in
all, so with ``drain_grace_s=0`` the server is gone by ``5 + timeout_s + 4``.
A second SIGINT forces exit (an impatient operator at a terminal).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from infra_inference.runtime.transport import http1
from infra_inference.runtime.server.app import ServerApp
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.transport.http1 import Connections, HttpConnection
from infra_inference.runtime.server.settings import ServerSettings

log = logging.getLogger(__name__)

# How long each drain step may outlast the longest an accepted request can take.
SHUTDOWN_MARGIN_S = 2.0


class ModelServer:
    """One model served over HTTP/1.1, with draining shutdown.

    Args:
        settings: Server configuration.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.app = ServerApp(DataPlane(settings))
        self.exit_code = 0
        self.started = False
        self._connections = Connections(settings.http_limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self._forced = False

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until drained (blocking), on uvloop when it is installed.

        Args:
            sockets: Already bound sockets to listen on instead of ``settings.host:port``.
        """
        http1.run(self.serve(sockets))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve in the running event loop until drained, stopped, or the model fails to load."""
        self._stop = asyncio.Event()
        loop = self._loop = asyncio.get_running_loop()
        if self._draining:  # asked before the loop existed (begin_drain sets the flag, then reads the loop)
            self._start_drain()
        dataplane = self.app.dataplane

        def connection() -> HttpConnection:
            return HttpConnection(self.app.respond, self._connections)

        # Loading starts first (it runs in threads), so a quick model is often ready by the time
        # the listener is; /healthz and /readyz answer meanwhile either way.
        loading = loop.create_task(self._load())
        listeners = await http1.listen(connection, self.settings.host, self.settings.port, sockets)
        http1.on_stop_signals(self._on_signal)
        for host, port in http1.addresses(listeners):
            log.info("infra-inference serving %r, running on http://%s:%d", dataplane.model_name, host, port)
        self.started = True
        try:
            await self._stop.wait()
        finally:
            http1.stop_accepting(listeners, self._connections)
            if not self._forced:
                await http1.close_all(self._connections, SHUTDOWN_MARGIN_S)
            loading.cancel()
            self.app.close()

    def _on_signal(self, sig: int) -> None:
        if not self._draining:
            self.begin_drain()
        elif sig == signal.SIGINT:
            self._forced = True
            self._stop.set()  # type: ignore[union-attr]  # set before signal handlers are

    def begin_drain(self) -> None:
        """Start draining; callable from any thread (signal handler, tests), also before ``serve``, and again."""
        if self._draining:
            return
        self._draining = True
        loop = self._loop
        if loop is not None and not loop.is_closed():  # closed: the server has stopped already
            loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:  # the loop holds tasks weakly: keep it referenced
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        self.app.dataplane.start_drain()
        # The listener stays open meanwhile, so requests arriving now get a 503 (and go
        # elsewhere) instead of a refused connection.
        settings = self.settings
        try:
            async with asyncio.timeout(max(settings.drain_grace_s, settings.timeout_s) + SHUTDOWN_MARGIN_S):
                await asyncio.gather(
                    asyncio.sleep(settings.drain_grace_s),
                    self._connections.wait_until(lambda: not self._connections.busy()),
                )
        except TimeoutError:
            log.warning("drain: connections still busy after timeout_s=%g; closing anyway", settings.timeout_s)
        self._stop.set()  # type: ignore[union-attr]

    async def _load(self) -> None:
        try:
            await self.app.dataplane.load()
        except Exception:
            log.exception("model %s failed to load", self.app.dataplane.model_name)
            self.exit_code = 1
            self._stop.set()  # type: ignore[union-attr]


def serve(settings: ServerSettings) -> int:
    """Run the model server until drained; returns the process exit status."""
    server = ModelServer(settings)
    server.run()
    return server.exit_code
