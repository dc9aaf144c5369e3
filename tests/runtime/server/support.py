"""Real servers for the tests: in a thread (fast) or as a child process (signals, exit codes)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from infra_inference.runtime.server import ModelServer, ServerSettings


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(port: int, method: str, path: str, body: bytes | None = None, timeout_s: float = 30.0) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def post(port: int, path: str, doc: Any, timeout_s: float = 30.0) -> Reply:
    return request(port, "POST", path, json.dumps(doc).encode(), timeout_s)


def v2_body(values: list[float], *, name: str = "x", delay_ms: float = 0.0, request_id: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"inputs": [{"name": name, "shape": [len(values)], "datatype": "FP64", "data": values}]}
    if delay_ms:
        doc["parameters"] = {"delay_ms": delay_ms}
    if request_id is not None:
        doc["id"] = request_id
    return doc


def scrape(port: int) -> dict[str, float]:
    """Every sample of /metrics, parsed with prometheus_client's parser, keyed ``name{l="v",...}``."""
    reply = request(port, "GET", "/metrics")
    assert reply.status == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


@contextmanager
def running_in_thread(server: Any, stop: Callable[[], None], join_s: float = 10) -> Iterator[int]:
    """Run `server.run(sockets=[...])` on a free 127.0.0.1 port in a thread; the port once it is ready."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started and request(port, "GET", "/readyz").status == 200)
        yield port
    finally:
        stop()
        thread.join(timeout=join_s)
        sock.close()


@contextmanager
def server_in_thread(**overrides: Any) -> Iterator[tuple[int, ModelServer]]:
    """A ModelServer on 127.0.0.1 (free port) in a thread, ready when yielded."""
    server = ModelServer(ServerSettings(host="127.0.0.1", port=0, **overrides))
    with running_in_thread(server, server.begin_drain) as port:
        yield port, server


class ServerProcess:
    """`infra-inference serve` as a child process; the port is read from its log."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-c", "from infra_inference.cli import main; main()", "serve"]
        self.proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", "0", "--log-level", "info", *flags],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.log: list[str] = []
        self.port = self._read_port()

    def _read_port(self) -> int:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            match = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                # Keep draining stderr so the child never blocks on a full pipe.
                threading.Thread(target=self._drain_log, daemon=True).start()
                return int(match[1])
        raise AssertionError("server exited before listening:\n" + "".join(self.log))

    def _drain_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
