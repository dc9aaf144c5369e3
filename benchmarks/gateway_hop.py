"""The gateway hop: what `infra-inference gateway` adds in front of a replica.

Three paths to the same `infra-inference serve --model echo` replica, in the
same run, in rotating order over several rounds (median reported):

- `direct`: the load generator talks to the replica;
- `tcp-relay`: through a byte relay on uvloop (one upstream connection per
  client connection, no HTTP parsing): the floor for any proxy written in
  Python, and what the gateway's queue, split, retry and metrics are judged
  against;
- `gateway`: through `infra-inference gateway` (static discovery, one backend);
- `nginx`: through nginx (Debian's package, one worker, keep-alive upstream,
  `benchmarks/nginx_peer.py`), the peer any team could put there instead;
  skipped, with the reason printed, where nginx is not installed.

The replica and the proxy are pinned to core 0, the load generator
(`httpload.py`) to core 1, so at c=32 the server side's req/s falls by what
the proxy's CPU costs, as it would for a sidecar sharing the replica's node.
The proxy's own CPU time per request is read from /proc.

    .venv/bin/python benchmarks/gateway_hop.py [--duration-s 3] [--rounds 3] [--compare-with PYTHON]

The proxies' CPU is read from /proc (nginx: master and worker together).

`--compare-with` adds a fourth path, `gateway-then`: the gateway of whatever
infra-inference that interpreter imports (a venv with an earlier version
installed), against the same replica in the same run.

Targets (issue 4, "the hop must be cheap"): at c=1 the gateway adds at most
1 ms to p50 and to p99 over `direct`; its CPU per request is at most 3x the
relay's (the relay only copies bytes; the gateway parses HTTP twice, queues,
and counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from httpload import free_port, median_of_rounds, run_load, start_pinned
from nginx_peer import nginx_missing, start_nginx, tree_cpu_seconds
from server_overhead import BODY, CLIENT_CORE, PATH, SERVER_CORE

PATHS = ["direct", "tcp-relay", "gateway"]
MAIN = "from infra_inference.cli import main; main()"
CLI = [sys.executable, "-c", MAIN]


async def _relay(port: int, upstream: int) -> None:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        replica_r, replica_w = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(client_r, replica_w), pipe(replica_r, client_w), return_exceptions=True)

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    await server.serve_forever()


def _start_proxy(path: str, replica_port: int, workdir: Path,
                 then_python: str | None) -> tuple[subprocess.Popen[bytes] | None, int]:
    if path == "direct":
        return None, replica_port
    port = free_port()
    if path == "nginx":
        return start_nginx(port, replica_port, workdir / "nginx", SERVER_CORE), port
    if path == "tcp-relay":
        relay = [sys.executable, __file__, "--relay", str(port), "--upstream", str(replica_port)]
        return start_pinned(relay, port, SERVER_CORE, path), port
    config = workdir / "gateway.json"
    gateway = {
        "service": "echo", "host": "127.0.0.1", "port": port, "max_queue": 1024, "discovery": "static",
        "backends": [{"variant": "main", "deployment": "echo", "max_concurrency": 64,
                      "endpoints": [f"127.0.0.1:{replica_port}"]}],
    }
    if path == "gateway-then" and then_python:
        # A version from before the admin port may not know the field: leave it to that version's default.
        config.write_text(json.dumps(gateway))
        # Started outside this checkout, so that `-c` does not import the package from here.
        then = [then_python, "-c", MAIN, "gateway", "--config", str(config)]
        return start_pinned(then, port, SERVER_CORE, path, cwd=workdir), port
    config.write_text(json.dumps({**gateway, "admin_port": 0}))
    return start_pinned([*CLI, "gateway", "--config", str(config)], port, SERVER_CORE, path), port


def measure(path: str, replica_port: int, concurrency: int, duration_s: float, workdir: Path,
            then_python: str | None = None) -> dict[str, float]:
    """req/s, p50 / p99 ms, and the proxy's CPU microseconds per request, for one path."""
    proxy, port = _start_proxy(path, replica_port, workdir, then_python)
    try:
        cpu_before = tree_cpu_seconds(proxy.pid) if proxy else 0.0
        result = run_load(port, PATH, BODY, concurrency, duration_s)
        # The 0.5 s warm-up's requests are in the CPU time too: count them at the measured rate.
        requests = result["rps"] * (duration_s + 0.5)
        result["cpu_us"] = (tree_cpu_seconds(proxy.pid) - cpu_before) / requests * 1e6 if proxy else 0.0
        return result
    finally:
        if proxy:
            proxy.terminate()
            proxy.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-with", metavar="PYTHON", help="Also measure the gateway this interpreter runs.")
    parser.add_argument("--relay", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        import uvloop

        uvloop.run(_relay(args.relay, args.upstream))
        return
    os.sched_setaffinity(0, {CLIENT_CORE})
    paths = [*PATHS, "gateway-then"] if args.compare_with else list(PATHS)
    missing = nginx_missing()
    if missing:
        print(f"peer proxy skipped: {missing}")
    else:
        paths.append("nginx")
    replica_port = free_port()
    replica = start_pinned([*CLI, "serve", "--host", "127.0.0.1", "--port", str(replica_port), "--model", "echo",
                            "--max-concurrency", "64", "--max-queue", "1024"], replica_port, SERVER_CORE, "replica")
    print(f"{'path':<12} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'proxy CPU us/req':>17}"
          f"   (median of {args.rounds} rounds)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in (1, 32):
                res = median_of_rounds(paths, args.rounds, lambda path: measure(
                    path, replica_port, concurrency, args.duration_s, Path(tmp), args.compare_with))
                for path, m in res.items():
                    print(f"{path:<12} {concurrency:>3} {m['rps']:>9.0f} {m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f}"
                          f" {m['cpu_us']:>17.1f}")
                direct, relay, gateway = res["direct"], res["tcp-relay"], res["gateway"]
                print(f"  c={concurrency}: gateway adds p50 {gateway['p50_ms'] - direct['p50_ms']:+.3f} ms, "
                      f"p99 {gateway['p99_ms'] - direct['p99_ms']:+.3f} ms (target <= 1 ms at c=1); "
                      f"req/s {gateway['rps'] / direct['rps']:.2f}x direct, {gateway['rps'] / relay['rps']:.2f}x relay; "
                      f"CPU/request {gateway['cpu_us'] / relay['cpu_us']:.2f}x the relay's (target <= 3)")
                if "nginx" in res:
                    peer = res["nginx"]
                    print(f"  c={concurrency}: against nginx: p50 {gateway['p50_ms'] - peer['p50_ms']:+.3f} ms, "
                          f"req/s {gateway['rps'] / peer['rps']:.2f}x, CPU/request {gateway['cpu_us'] / peer['cpu_us']:.2f}x")
                if "gateway-then" in res:
                    then = res["gateway-then"]
                    print(f"  c={concurrency}: against gateway-then: req/s {gateway['rps'] / then['rps']:.2f}x, "
                          f"p50 {gateway['p50_ms'] / then['p50_ms']:.2f}x, "
                          f"CPU/request {gateway['cpu_us'] / then['cpu_us']:.2f}x")
    finally:
        replica.terminate()
        replica.wait(timeout=30)


if __name__ == "__main__":
    main()
