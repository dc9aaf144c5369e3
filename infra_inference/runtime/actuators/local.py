"""Local actuator: `infra-inference serve` processes on free ports of 127.0.0.1.

It plays the Deployment controller, the kubelet's readiness probe and the
EndpointSlice controller at once: keeps the number of live processes at the
number asked for (a killed one is replaced), probes /readyz, and publishes
ready replicas to the endpoints file the gateway watches. Scaling down takes a
replica out of that file first, waits for the gateway to notice, then sends
SIGTERM, and the server drains (finishes what it accepted) before exiting.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from infra_inference.runtime.actuators.base import Replicas
from infra_inference.runtime.discovery.endpoints_file import FILE_POLL_S, write_endpoints_file
from infra_inference.runtime.transport.ports import free_port
from infra_inference.wire.policy import LocalReplicas

log = logging.getLogger(__name__)

# Reconcile period: a dead replica is replaced, and a ready one published, within this.
RECONCILE_S = 0.05
# After unpublishing a replica, wait for the gateway to re-read the file (4 polls) before SIGTERM.
UNPUBLISH_WAIT_S = 4 * FILE_POLL_S
STOP_TIMEOUT_S = 60.0


@dataclass(eq=False)
class _Process:
    popen: subprocess.Popen[bytes]
    port: int
    ready: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalActuator:
    """Replicas of each deployment in `specs` as child processes.

    Args:
        specs: How to start each deployment's replicas; all share one endpoints file.
    """

    def __init__(self, specs: dict[str, LocalReplicas]) -> None:
        self._specs = specs
        files = {Path(s.endpoints_file) for s in specs.values()}
        if len(files) != 1:
            raise ValueError("local deployments of one service share one endpoints_file")
        self._file: Path = files.pop()
        self._desired = dict.fromkeys(specs, 0)
        self._live: dict[str, list[_Process]] = {d: [] for d in specs}
        self._stopping: list[_Process] = []
        self._published: dict[str, list[str]] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._publish()
        self._task = asyncio.create_task(self._reconcile_forever())

    async def replicas(self, deployment: str) -> Replicas:
        return Replicas(self._desired[deployment], len(self.ready_urls(deployment)))

    def ready_urls(self, deployment: str) -> list[str]:
        return [p.url for p in self._live[deployment] if p.ready]

    async def scale(self, deployment: str, replicas: int) -> None:
        self._desired[deployment] = replicas
        await self._reconcile()

    def pids(self, deployment: str) -> list[int]:
        return [p.popen.pid for p in self._live[deployment]]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for d in self._live:
            self._desired[d] = 0
            await self._retire(d, len(self._live[d]))
        await asyncio.gather(*(asyncio.to_thread(_wait, p) for p in self._stopping))
        if self._session is not None:
            await self._session.close()

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self._reconcile()
            except Exception:  # keep reconciling; one bad probe must not stop the replicas' upkeep
                log.exception("local actuator reconcile")
            await asyncio.sleep(RECONCILE_S)

    async def _reconcile(self) -> None:
        for d, live in self._live.items():
            for p in [p for p in live if p.popen.poll() is not None]:
                log.warning("replica %s of %s exited with %s; replacing it", p.url, d, p.popen.returncode)
                live.remove(p)
            self._publish()
            missing = self._desired[d] - len(live)
            for _ in range(missing):
                live.append(self._spawn(d))
            if missing < 0:
                await self._retire(d, -missing)
            await asyncio.gather(*(self._probe(p) for p in live if not p.ready))
        self._publish()
        self._stopping = [p for p in self._stopping if p.popen.poll() is None]

    def _spawn(self, deployment: str) -> _Process:
        port = free_port()
        command = [sys.executable, "-m", "infra_inference", "serve", "--host", "127.0.0.1", "--port", str(port),
                   *self._specs[deployment].serve_args]
        log.info("starting replica of %s on port %d", deployment, port)
        return _Process(subprocess.Popen(command, stdin=subprocess.DEVNULL), port)

    async def _retire(self, deployment: str, count: int) -> None:
        """Unpublish `count` replicas (starting ones first, then the newest), then SIGTERM them."""
        live = self._live[deployment]
        order = sorted(range(len(live)), key=lambda i: (live[i].ready, -i))
        victims = [live[i] for i in order[:count]]
        for p in victims:
            live.remove(p)
        self._publish()
        if any(p.ready for p in victims):
            await asyncio.sleep(UNPUBLISH_WAIT_S)
        for p in victims:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
            self._stopping.append(p)

    async def _probe(self, p: _Process) -> None:
        assert self._session is not None
        try:
            async with self._session.get(f"{p.url}/readyz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                p.ready = r.status == 200
            if p.ready:  # probed only while not ready: this is the moment it turned ready
                log.info("replica on port %d is ready", p.port)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            p.ready = False

    def _publish(self) -> None:
        endpoints = {d: [f"127.0.0.1:{p.port}" for p in live if p.ready and p.popen.poll() is None]
                     for d, live in self._live.items()}
        if endpoints != self._published:
            write_endpoints_file(self._file, endpoints)
            self._published = endpoints


def _wait(p: _Process) -> None:
    try:
        p.popen.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.popen.kill()
        p.popen.wait()
