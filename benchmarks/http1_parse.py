"""The HTTP/1.1 protocol's own cost per request, in process: parse, hand over, write the answer.

Feeds one OIP request (the `server_overhead.py` body) at a time to an
`HttpConnection` over a transport that drops what it is given, with a handler
that answers a constant, so what is timed is `http1` alone: no sockets, no
event-loop trips, no other process. Far less noisy than the end-to-end
benchmarks on a shared machine. `--then` times an earlier `http1.py` (a file
path) in the same run, rounds alternating; the minimum over rounds is the
figure least disturbed by neighbours.

    .venv/bin/python benchmarks/http1_parse.py [--rounds 15] [--requests 20000] [--then OLD/http1.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import sys
import time
from types import ModuleType
from typing import Any

import uvloop
from server_overhead import BODY, PATH

REQUEST = b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    PATH.encode(), len(BODY), BODY)


class _Sink:
    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: return False
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


def _load(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _connection(http1: ModuleType) -> Any:
    answer = http1.Response(200, b'{"ok":1}')
    handler = lambda request, reply: answer  # noqa: E731
    if "limits" in inspect.signature(http1.Connections).parameters:
        return http1.HttpConnection(handler, http1.Connections(http1.Limits()))
    return http1.HttpConnection(handler, http1.Connections(), 64 * 2**20, 75.0)  # before Limits


async def _time(http1: ModuleType, n: int) -> float:
    connection = _connection(http1)
    connection.connection_made(_Sink())
    start = time.perf_counter()
    for _ in range(n):
        connection.data_received(REQUEST)
    return (time.perf_counter() - start) / n * 1e6


async def _main(args: argparse.Namespace) -> None:
    from infra_inference.runtime.transport import http1

    versions = {"now": http1}
    if args.then:
        versions["then"] = _load(args.then, "http1_then")
    times: dict[str, list[float]] = {name: [] for name in versions}
    for r in range(args.rounds):
        order = list(versions.items())
        for name, module in order[r % len(order):] + order[: r % len(order)]:
            times[name].append(await _time(module, args.requests))
    for name, values in times.items():
        print(f"{name:<5} us/request: min {min(values):.2f}, median {statistics.median(values):.2f}")
    if args.then:
        print(f"now/then: min {min(times['now']) / min(times['then']):.3f}x, "
              f"median {statistics.median(times['now']) / statistics.median(times['then']):.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--then", metavar="HTTP1_PY", help="An earlier http1.py to time in the same run.")
    uvloop.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
