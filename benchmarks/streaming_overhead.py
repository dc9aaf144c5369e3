"""Token streaming through a proxy: what the gateway adds per token, against direct and against nginx.

One `infra-inference serve --model tiny-lm` replica (a token every
`--token-delay-ms`) and three paths to it, measured in the same run, in
rotating order over several rounds (median reported):

- `direct`: clients read the replica's server-sent events themselves;
- `gateway`: through `infra-inference gateway`;
- `nginx`: through nginx with `proxy_buffering off` (benchmarks/nginx_peer.py;
  skipped, with the reason printed, where nginx is not installed).

Each client streams `generate_stream` answers of `--tokens` tokens back to
back on one keep-alive connection. Reported per path: time to first token
(p50), the mean gap between tokens as the client sees them, what the proxy
adds per token over direct (gap difference), and the proxy's CPU per token
(from /proc). The replica and the proxy share core 0, the clients run on
core 1, as in gateway_hop.py.

    .venv/bin/python benchmarks/streaming_overhead.py [--tokens 64] [--token-delay-ms 10] [--duration-s 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from httpload import free_port, median_of_rounds, start_pinned
from nginx_peer import nginx_missing, start_nginx, tree_cpu_seconds
from server_overhead import CLIENT_CORE, SERVER_CORE

CLI = [sys.executable, "-c", "from infra_inference.cli import main; main()"]
PATH = "/v2/models/tiny-lm/generate_stream"


async def _stream(port: int, request: bytes, stop_at: float, out: list[tuple[float, float, int]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    while (start := clock()) < stop_at:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise RuntimeError(f"unexpected answer: {head!r}")
        first, tokens = 0.0, 0
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            chunk = await reader.readexactly(size + 2)
            if not tokens:
                first = clock()
            tokens += chunk.count(b"data: ")
        await reader.readexactly(2)
        out.append((first - start, clock() - first, tokens))
    writer.close()


async def _load(port: int, request: bytes, clients: int, duration_s: float) -> list[tuple[float, float, int]]:
    await asyncio.gather(*(_stream(port, request, time.perf_counter() + 0.3, []) for _ in range(clients)))
    out: list[tuple[float, float, int]] = []
    await asyncio.gather(*(_stream(port, request, time.perf_counter() + duration_s, out) for _ in range(clients)))
    return out


def measure(path: str, replica_port: int, request: bytes, clients: int, duration_s: float,
            workdir: Path) -> dict[str, float]:
    proxy: subprocess.Popen[bytes] | None = None
    port = replica_port
    if path == "gateway":
        port = free_port()
        config = workdir / "gateway.json"
        config.write_text(json.dumps({
            "service": "lm", "host": "127.0.0.1", "port": port, "admin_port": 0, "max_queue": 1024,
            "discovery": "static", "backends": [{"variant": "main", "deployment": "lm", "max_concurrency": 256,
                                                 "endpoints": [f"127.0.0.1:{replica_port}"]}]}))
        proxy = start_pinned([*CLI, "gateway", "--config", str(config)], port, SERVER_CORE, path)
    elif path == "nginx":
        port = free_port()
        proxy = start_nginx(port, replica_port, workdir / "nginx", SERVER_CORE)
    import uvloop

    try:
        cpu_before = tree_cpu_seconds(proxy.pid) if proxy else 0.0
        streams = uvloop.run(_load(port, request, clients, duration_s))
        cpu = tree_cpu_seconds(proxy.pid) - cpu_before if proxy else 0.0
    finally:
        if proxy:
            proxy.terminate()
            proxy.wait(timeout=30)
    tokens = sum(n for _, _, n in streams)
    return {"ttft_ms": statistics.median(t for t, _, _ in streams) * 1e3,
            "gap_us": statistics.mean(d / (n - 1) for _, d, n in streams if n > 1) * 1e6,
            "tokens_s": tokens / duration_s,
            # The 0.3 s warm-up's tokens are in the CPU time too: count them at the measured rate.
            "cpu_us": cpu / (tokens * (duration_s + 0.3) / duration_s) * 1e6 if proxy else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay-ms", type=float, default=10.0)
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    paths = ["direct", "gateway"]
    missing = nginx_missing()
    if missing:
        print(f"peer proxy skipped: {missing}")
    else:
        paths.append("nginx")
    body = orjson.dumps({"text_input": "a", "parameters": {"max_tokens": args.tokens, "ignore_eos": True,
                                                           "temperature": 0}})
    request = (f"POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body
    replica_port = free_port()
    replica = start_pinned([*CLI, "serve", "--host", "127.0.0.1", "--port", str(replica_port), "--model", "tiny-lm",
                            "--token-delay-ms", str(args.token_delay_ms), "--max-concurrency", "256",
                            "--max-queue", "1024", "--timeout-s", "600"], replica_port, SERVER_CORE, "replica")
    print(f"{args.tokens} tokens per stream, one every {args.token_delay_ms:g} ms; median of {args.rounds} rounds")
    print(f"{'path':<8} {'clients':>7} {'TTFT p50 ms':>11} {'gap us':>9} {'tokens/s':>9} {'proxy CPU us/token':>19}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for clients in (1, 32):
                res = median_of_rounds(paths, args.rounds, lambda path: measure(
                    path, replica_port, request, clients, args.duration_s, Path(tmp)))
                for path, m in res.items():
                    print(f"{path:<8} {clients:>7} {m['ttft_ms']:>11.2f} {m['gap_us']:>9.0f} {m['tokens_s']:>9.0f}"
                          f" {m['cpu_us']:>19.1f}")
                direct = res["direct"]
                for path in paths[1:]:
                    m = res[path]
                    print(f"  clients={clients}: {path} adds {m['gap_us'] - direct['gap_us']:+.0f} us per token, "
                          f"TTFT {m['ttft_ms'] - direct['ttft_ms']:+.2f} ms")
                if "nginx" in res:
                    g, n = res["gateway"], res["nginx"]
                    print(f"  clients={clients}: gateway CPU/token {g['cpu_us'] / n['cpu_us']:.2f}x nginx's")
    finally:
        replica.terminate()
        replica.wait(timeout=30)


if __name__ == "__main__":
    main()
