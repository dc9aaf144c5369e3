"""A service on this machine: the gateway and the autoscaler as child processes, replicas started by it.

The same entrypoints and code paths as in a cluster: `infra-inference
gateway` with file discovery instead of EndpointSlices, and
`infra-inference autoscaler` with the local actuator instead of the scale
subresource.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from infra_inference.runtime.transport.ports import free_port
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.wire.gateway import BackendConfig, GatewayConfig
from infra_inference.wire.names import GATEWAY_CONFIG, POLICY_CONFIG
from infra_inference.wire.policy import AutoscalerConfig, LocalReplicas

DEPLOYMENT = "dev"
START_TIMEOUT_S = 30.0


class DevStack:
    """Gateway + autoscaler (+ replicas) for one model; a context manager that cleans up after itself.

    Args:
        policy: Scaling knobs; its target must be resolved.
        serve_args: Flags for each replica's `infra-inference serve`.
        max_concurrency: Per replica; the gateway honours it.
        port: Gateway's service port (0: a free one); its admin port is always a free one.
        timeout_s, max_queue: The gateway's queue.
        tick_s: Autoscaler tick.
    """

    def __init__(self, policy: ScalingSpec, serve_args: list[str], max_concurrency: int, port: int = 0,
                 timeout_s: float = 30.0, max_queue: int = 1024, tick_s: float = 0.5, model: str = "echo") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="infra-inference-dev-"))
        self.port = port or free_port()
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.model = model
        endpoints = self.dir / "endpoints.json"
        gateway = GatewayConfig(
            service=DEPLOYMENT, model=model, host="127.0.0.1", port=self.port, admin_port=self.admin_port,
            timeout_s=timeout_s,
            max_queue=max_queue, discovery="file", endpoints_file=str(endpoints),
            backends=[BackendConfig(variant="main", deployment=DEPLOYMENT, max_concurrency=max_concurrency)])
        local = LocalReplicas(serve_args=["--max-concurrency", str(max_concurrency), *serve_args],
                              endpoints_file=str(endpoints))
        autoscaler = AutoscalerConfig.model_validate({
            **policy.model_dump(), "deployments": [DEPLOYMENT], "gateway_url": self.admin_url, "tick_s": tick_s,
            "metrics_port": self.metrics_port, "local": local})
        (self.dir / GATEWAY_CONFIG).write_text(gateway.model_dump_json(indent=2))
        (self.dir / POLICY_CONFIG).write_text(autoscaler.model_dump_json(indent=2))
        self._procs: list[subprocess.Popen[bytes]] = []
        self.autoscaler_log = self.dir / "autoscaler.log"

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        cli = [sys.executable, "-m", "infra_inference"]
        self._procs.append(subprocess.Popen([*cli, "gateway", "--config", str(self.dir / GATEWAY_CONFIG)]))
        with self.autoscaler_log.open("wb") as log:
            self._procs.append(subprocess.Popen([*cli, "autoscaler", "--config", str(self.dir / POLICY_CONFIG)],
                                                stderr=log))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_get(self.admin_port, "/readyz") and _get(self.metrics_port, "/metrics")):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._procs):
                self.stop()
                raise RuntimeError(f"dev stack did not start; see {self.autoscaler_log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Autoscaler first (it drains its replicas), then the gateway."""
        for p in reversed(self._procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs.clear()

    def gateway_metrics(self) -> str:
        return _get(self.admin_port, "/metrics") or ""

    def autoscaler_metrics(self) -> str:
        return _get(self.metrics_port, "/metrics") or ""

    def replica_starts_s(self) -> list[float]:
        """Seconds from spawning each replica to its being ready, from the local actuator's log, in order.

        A replica's real cold start in this stack: under load from the gateway
        and the other replicas it can be several times a bare start's.
        """
        spawned = self._logged_at(f"starting replica of {DEPLOYMENT} on port")
        ready = self._logged_at("replica on port")
        return [ready[port] - spawned[port] for port in sorted(ready, key=ready.__getitem__) if port in spawned]

    def _logged_at(self, message: str) -> dict[int, float]:
        """{port: wall-clock seconds} of the local actuator's log lines ``<message> <port>...``."""
        out = {}
        for line in self.autoscaler_log.read_text().splitlines():
            found = re.search(message + r" (\d+)", line)
            if found:
                out[int(found[1])] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return out

    def decisions(self) -> list[dict[str, Any]]:
        """The autoscaler's logged decisions, oldest first."""
        out = []
        for line in self.autoscaler_log.read_text().splitlines():
            start = line.find('{"deployment"')
            if start >= 0:
                out.append(json.loads(line[start:]))
        return out


def _get(port: int, path: str) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode()
        return body if r.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()
