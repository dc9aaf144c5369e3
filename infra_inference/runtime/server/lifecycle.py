"""Process lifecycle: run the app on uvicorn, drain on SIGTERM, exit 0 only when nothing is left.

Drain order on SIGTERM (what Kubernetes sends at pod deletion):
1. readiness turns false and new inference requests get 503 (the gateway
   retries them on another replica), while the socket stays open;
2. every request already accepted is answered, and at least
   ``drain_grace_s`` passes (endpoint removal propagates meanwhile);
3. uvicorn closes the listener and idle connections, and the process exits 0.
A second SIGINT forces exit (an impatient operator at a terminal).
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import socket
from types import FrameType

import uvicorn

from infra_inference.runtime.server.app import ServerApp
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.settings import ServerSettings


class ModelServer(uvicorn.Server):
    """uvicorn serving one model, with draining shutdown.

    Args:
        settings: Server configuration.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.app = ServerApp(DataPlane(settings), on_load_failure=self._fail)
        uvloop = importlib.util.find_spec("uvloop") is not None
        super().__init__(
            uvicorn.Config(
                self.app,
                host=settings.host,
                port=settings.port,
                http="httptools",
                loop="uvloop" if uvloop else "asyncio",
                ws="none",
                lifespan="on",
                access_log=False,
                log_level=settings.log_level,
            )
        )
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's own handler stops accepting at once and re-raises the signal at the
        # end (exit status -15); draining needs the socket open and a clean exit 0.
        if not self._draining:
            self.begin_drain()
        elif sig == signal.SIGINT:
            self.force_exit = self.should_exit = True

    def begin_drain(self) -> None:
        """Start draining; callable from any thread (signal handler, tests)."""
        if self._loop is None:  # not started yet: nothing was accepted
            self.should_exit = True
            return
        self._draining = True
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._drain()))  # type: ignore[union-attr]

    async def _drain(self) -> None:
        self.app.dataplane.start_drain()
        await asyncio.gather(asyncio.sleep(self.settings.drain_grace_s), self.app.wait_quiet())
        self.should_exit = True

    def _fail(self) -> None:
        self.exit_code = 1
        self.should_exit = True


def serve(settings: ServerSettings) -> int:
    """Run the model server until drained; returns the process exit status."""
    server = ModelServer(settings)
    server.run()
    return server.exit_code
