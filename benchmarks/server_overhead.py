"""Server overhead: `infra-inference serve --model echo` against raw Starlette and FastAPI echo apps.

Each server is one process pinned to core 0; the load generator
(`httpload.py`: keep-alive HTTP/1.1 connections on uvloop) is pinned to
core 1. The baselines run as people deploy them: one uvicorn worker
(httptools, uvloop, no access log).
Ours is `infra-inference serve` as shipped: its own HTTP/1.1 protocol on
httptools and uvloop, no ASGI server. Every server gets the same OIP request
body, at c=1 and c=32, in the same run, so the ratios compare like with like.
Servers are measured in rotating order over several rounds and the median is
reported, so a noisy neighbour on the machine does not decide a ratio.
`asgi-floor` (a bare ASGI callable answering a constant) shows what uvicorn
itself costs: no app on uvicorn can beat it.

    .venv/bin/python benchmarks/server_overhead.py [--duration-s 3] [--rounds 3] [--compare-with PYTHON]

`--compare-with` adds `infra-inference-then`: the server of whatever
infra-inference that interpreter imports (an earlier version), in the same
run. Needs the `bench` extra (starlette, fastapi) for the baselines; without
it only ours (and then) are measured. Targets (issue 3): >= 60 % of
raw Starlette's req/s, >= 1.5x FastAPI's, p99 <= 1.5x raw Starlette's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from httpload import cpu_seconds, free_port, run_load, start_pinned

BODY = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]})
PATH = "/v2/models/echo/infer"
SERVER_CORE, CLIENT_CORE = 0, 1


def starlette_app() -> Any:
    """The baseline: the least one can write in Starlette for a JSON echo."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def infer(request: Request) -> JSONResponse:
        doc = await request.json()
        return JSONResponse({"model_name": "echo", "outputs": doc["inputs"]})

    return Starlette(routes=[Route(PATH, infer, methods=["POST"])])


def fastapi_app() -> Any:
    """The FastAPI equivalent, as people write it (dict body, returned document)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post(PATH)
    async def infer(doc: dict[str, Any]) -> dict[str, Any]:
        return {"model_name": "echo", "outputs": doc["inputs"]}

    return app


def asgi_floor_app() -> Any:
    """uvicorn's own cost: read the body, answer a constant."""
    answer = orjson.dumps({"model_name": "echo", "outputs": orjson.loads(BODY)["inputs"]})
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await receive()
            await send(start)
            await send({"type": "http.response.body", "body": answer})

    return app


def _serve_baseline(kind: str, port: int) -> None:
    import uvicorn

    app = {"starlette": starlette_app, "fastapi": fastapi_app, "asgi-floor": asgi_floor_app}[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", access_log=False, log_level="warning")


def _start(kind: str, then_python: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind.startswith("infra-inference"):
        python = then_python if kind == "infra-inference-then" and then_python else sys.executable
        command = [python, "-c", "from infra_inference.cli import main; main()", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--model", "echo", "--max-concurrency", "64", "--max-queue", "1024"]
        # Started outside this checkout, so that `-c` imports the package its interpreter has.
        return start_pinned(command, port, SERVER_CORE, kind, cwd=Path(tempfile.gettempdir())), port
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    return start_pinned(command, port, SERVER_CORE, kind), port


def measure(kind: str, concurrency: int, duration_s: float, then_python: str | None = None) -> dict[str, float]:
    """req/s, p50 and p99 (ms) of one server at one concurrency."""
    proc, port = _start(kind, then_python)
    try:
        cpu_before = cpu_seconds(proc.pid)
        result = run_load(port, PATH, BODY, concurrency, duration_s)
        # The 0.5 s warm-up's requests are in the CPU time too: count them at the measured rate.
        result["cpu_us"] = (cpu_seconds(proc.pid) - cpu_before) / (result["rps"] * (duration_s + 0.5)) * 1e6
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-with", metavar="PYTHON", help="Also measure the server this interpreter runs.")
    parser.add_argument("--serve", choices=["starlette", "fastapi", "asgi-floor"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_baseline(args.serve, args.port)
        return
    os.sched_setaffinity(0, {CLIENT_CORE})
    kinds = ["asgi-floor", "starlette", "fastapi", "infra-inference"] if _have_baselines() else ["infra-inference"]
    if args.compare_with:
        kinds.append("infra-inference-then")
    print(f"{'server':<16} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}"
          f"   (median of {args.rounds} rounds)")
    for concurrency in (1, 32):
        rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for r in range(args.rounds):
            for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                rounds[kind].append(measure(kind, concurrency, args.duration_s, args.compare_with))
        results = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in rounds.items()}
        for kind, r in results.items():
            print(f"{kind:<16} {concurrency:>3} {r['rps']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
                  f" {r['cpu_us']:>11.1f}")
        ours = results["infra-inference"]
        if "starlette" in results:
            raw, fast = results["starlette"], results["fastapi"]
            print(
                f"  c={concurrency}: ours/starlette req/s {ours['rps'] / raw['rps']:.2f} (target >= 0.60), "
                f"ours/fastapi req/s {ours['rps'] / fast['rps']:.2f} (target >= 1.5), "
                f"p99 ours/starlette {ours['p99_ms'] / raw['p99_ms']:.2f} (target <= 1.5)"
            )
        if "infra-inference-then" in results:
            then = results["infra-inference-then"]
            print(f"  c={concurrency}: against infra-inference-then: req/s {ours['rps'] / then['rps']:.2f}x, "
                  f"p50 {ours['p50_ms'] / then['p50_ms']:.2f}x, p99 {ours['p99_ms'] / then['p99_ms']:.2f}x, "
                  f"CPU/request {ours['cpu_us'] / then['cpu_us']:.2f}x")


def _have_baselines() -> bool:
    try:
        import fastapi  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("(no bench extra: starlette, fastapi and uvicorn baselines skipped)")
        return False
    return True


if __name__ == "__main__":
    main()
