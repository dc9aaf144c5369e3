"""The gateway's Prometheus metrics, per backend (labels `deployment` and `variant`).

These are what the autoscaler reads: concurrency is inflight + queue depth
(everything accepted and not yet answered), throughput is the rate of
`requests_total`, latency comes from the duration histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra_inference.runtime.gateway.dispatch import Backend, Dispatcher

# The model server's buckets, so gateway and replica latencies compare bucket for bucket.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LABELS = ("deployment", "variant")


class _Occupancy(Collector):
    """Queue, in-flight and replica gauges read from the dispatcher at scrape time."""

    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], float]) -> None:
        self._dispatcher = dispatcher
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        gauges = {
            "infra_inference_inflight_requests": ("Requests sent to a replica and not yet answered.",
                                                  lambda b: b.inflight),
            "infra_inference_queue_depth": ("Requests waiting at the gateway for a replica slot.",
                                            lambda b: len(b.queue)),
            "infra_inference_ready_replicas": ("Replicas the gateway can send to.", lambda b: b.ready(now)),
        }
        for name, (doc, read) in gauges.items():
            family = GaugeMetricFamily(name, doc, labels=LABELS)
            for b in self._dispatcher.backends.values():
                family.add_metric([b.config.deployment, b.config.variant], read(b))
            yield family


class GatewayMetrics:
    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("infra_inference_requests", "Requests answered by the gateway, by status code.",
                                 [*LABELS, "code"], registry=self.registry)
        self._duration = Histogram("infra_inference_request_duration_seconds",
                                   "Arrival at the gateway to answer, queueing included.", LABELS,
                                   buckets=DURATION_BUCKETS_S, registry=self.registry)
        self.registry.register(_Occupancy(dispatcher, clock))

    def observe(self, backend: Backend, code: int, duration_s: float) -> None:
        c = backend.config
        self._requests.labels(c.deployment, c.variant, str(code)).inc()
        self._duration.labels(c.deployment, c.variant).observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
