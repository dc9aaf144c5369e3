"""The load generator the HTTP benchmarks share: keep-alive HTTP/1.1 connections on uvloop, closed loop.

Each connection sends one request, reads the whole answer, and sends the next,
so `concurrency` is the number of requests in flight. Answers other than 200
stop the run: a benchmark that counts errors as throughput measures nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_pinned(command: Sequence[str], port: int, core: int, what: str,
                 cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `command` on one core (in `cwd`); return once it accepts connections on `port`."""
    proc = subprocess.Popen(list(command), cwd=cwd, preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not start")


async def _connection(port: int, path: str, body: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    clock = time.perf_counter
    while (start := clock()) < stop_at:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        answer = await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head!r} {answer!r}")
        latencies.append(clock() - start)
    writer.close()


async def _load(port: int, path: str, body: bytes, concurrency: int, duration_s: float) -> list[float]:
    latencies: list[float] = []
    warm_until = time.perf_counter() + 0.5
    await asyncio.gather(*(_connection(port, path, body, warm_until, []) for _ in range(concurrency)))
    stop_at = time.perf_counter() + duration_s
    await asyncio.gather(*(_connection(port, path, body, stop_at, latencies) for _ in range(concurrency)))
    return latencies


def run_load(port: int, path: str, body: bytes, concurrency: int, duration_s: float) -> dict[str, float]:
    """req/s, p50 and p99 (ms) over `duration_s` after a 0.5 s warm-up."""
    import uvloop

    latencies = uvloop.run(_load(port, path, body, concurrency, duration_s))
    quantiles = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / duration_s, "p50_ms": quantiles[49] * 1e3, "p99_ms": quantiles[98] * 1e3}


def median_of_rounds(paths: Sequence[str], rounds: int,
                     measure: Callable[[str], dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each path measured `rounds` times, in an order rotated every round (so drift spreads over all); medians."""
    seen: dict[str, list[dict[str, float]]] = {p: [] for p in paths}
    for r in range(rounds):
        for path in [*paths[r % len(paths):], *paths[: r % len(paths)]]:
            seen[path].append(measure(path))
    return {p: {m: statistics.median(x[m] for x in v) for m in v[0]} for p, v in seen.items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
