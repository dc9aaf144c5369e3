"""The gateway's Prometheus metrics, per backend (labels `deployment` and `variant`).

These are what the autoscaler reads. Concurrency, by Little's law, is the
rate of `arrivals_total` times the mean service time (`replica_duration_seconds`
sum over count): 60 req/s at 0.1 s each keep 6 requests in flight, however
long the queue grew while replicas started. Queue depth times that service
time is the backlog's work; inflight + queue depth (everything accepted and
not yet answered) is the fallback before any request was served, and what
says "not idle". Throughput is the rate of `requests_total`, latency comes
from the duration histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, generate_latest
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


@dataclass
class _BackendInstruments:
    """One backend's labelled children, looked up once: `labels()` costs ~10 us a call on the hop."""

    arrivals: Counter
    replica_duration: Summary
    duration: Histogram
    by_code: dict[int, Counter]


class GatewayMetrics:
    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("infra_inference_requests", "Requests answered by the gateway, by status code.",
                                 [*LABELS, "code"], registry=self.registry)
        duration = Histogram("infra_inference_request_duration_seconds",
                             "Arrival at the gateway to answer, queueing included.", LABELS,
                             buckets=DURATION_BUCKETS_S, registry=self.registry)
        arrivals = Counter("infra_inference_arrivals", "Requests received by the gateway.", LABELS,
                           registry=self.registry)
        replica_duration = Summary("infra_inference_replica_duration_seconds",
                                   "Sent to a replica to its answer: the service time, queueing excluded.",
                                   LABELS, registry=self.registry)
        self._of = {
            d: _BackendInstruments(arrivals.labels(d, b.config.variant), replica_duration.labels(d, b.config.variant),
                                   duration.labels(d, b.config.variant), {})
            for d, b in dispatcher.backends.items()
        }
        self.registry.register(_Occupancy(dispatcher, clock))

    def arrived(self, backend: Backend) -> None:
        self._of[backend.config.deployment].arrivals.inc()

    def served(self, backend: Backend, seconds: float) -> None:
        self._of[backend.config.deployment].replica_duration.observe(seconds)

    def observe(self, backend: Backend, code: int, duration_s: float) -> None:
        instruments = self._of[backend.config.deployment]
        counter = instruments.by_code.get(code)
        if counter is None:
            c = backend.config
            counter = instruments.by_code[code] = self._requests.labels(c.deployment, c.variant, str(code))
        counter.inc()
        instruments.duration.observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
