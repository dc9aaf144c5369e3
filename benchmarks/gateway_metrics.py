"""CPU per request of the gateway's metric updates: ours against prometheus_client's instruments.

Per request the gateway counts an arrival, a replica's service time and the
answer (code and duration). `ours` is `GatewayMetrics` (plain numbers on the
event loop's thread, runtime/metrics/loop_local.py); `prometheus_client` is
the same three updates on labelled Counter / Summary / Histogram children,
each taking its lock, as the gateway did before. Same process, same run,
alternating, best of several passes.

    .venv/bin/python benchmarks/gateway_metrics.py [--requests 200000] [--passes 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary

from infra_inference.runtime.gateway.dispatch import Dispatcher
from infra_inference.runtime.gateway.metrics import GatewayMetrics
from infra_inference.wire import metrics as names
from infra_inference.wire.gateway import BackendConfig


def ours() -> Callable[[], None]:
    dispatcher = Dispatcher([BackendConfig(variant="main", deployment="echo")], 64, time.monotonic)
    metrics, backend = GatewayMetrics(dispatcher, time.monotonic, "echo"), dispatcher.backends["echo"]

    def one() -> None:
        counts = metrics.of(backend)  # once per request, as the gateway does
        counts.arrived()
        counts.served(0.003)
        counts.observe(200, 0.004)
    return one


def locking() -> Callable[[], None]:
    registry, labels = CollectorRegistry(), ("deployment", "variant")
    arrivals = Counter(names.ARRIVALS, "", labels, registry=registry).labels("echo", "main")
    served = Summary(names.REPLICA_DURATION, "", labels, registry=registry).labels("echo", "main")
    duration = Histogram(names.REQUEST_DURATION, "", labels, buckets=names.DURATION_BUCKETS_S,
                         registry=registry).labels("echo", "main")
    ok = Counter(names.REQUESTS, "", [*labels, "code"], registry=registry).labels("echo", "main", "200")

    def one() -> None:
        arrivals.inc()
        served.observe(0.003)
        ok.inc()
        duration.observe(0.004)
    return one


def cpu_us(one: Callable[[], None], requests: int) -> float:
    start = time.process_time()
    for _ in range(requests):
        one()
    return (time.process_time() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    paths = {"ours": ours(), "prometheus_client": locking()}
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(args.passes):
        for name, one in paths.items():
            best[name] = min(best[name], cpu_us(one, args.requests))
    for name, us in best.items():
        print(f"{name:18} {us:6.2f} us CPU per request (best of {args.passes} x {args.requests})")
    print(f"ours / prometheus_client: {best['ours'] / best['prometheus_client']:.2f}x")


if __name__ == "__main__":
    main()
