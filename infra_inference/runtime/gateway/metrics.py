"""The gateway's Prometheus metrics, per backend (labels `deployment` and `variant`), each labelled with its `service`.

These are what the autoscaler reads. Concurrency, by Little's law, is the
rate of `arrivals_total` times the mean service time (`replica_duration_seconds`
sum over count): 60 req/s at 0.1 s each keep 6 requests in flight, however
long the queue grew while replicas started. Queue depth times that service
time is the backlog's work; inflight + queue depth (everything accepted and
not yet answered) is the fallback before any request was served, and what
says "not idle". Throughput is the rate of `requests_total`, latency comes
from the duration histogram.

The request path updates plain numbers, as the model server's does
(runtime/metrics/loop_local.py): no instrument lock on the hop.

For generative models: `time_to_first_token_seconds` runs from arrival to
the first byte of the answer's body (the first token of a stream; for an
answer read whole, the whole answer), `stream_duration_seconds` from
arrival to the end of a relayed (streamed) answer, `streams_broken_total`
counts those that ended early, and `generated_tokens_total` adds up the
`usage.completion_tokens` that answers carry (OpenAI's completions, and a
stream's last event when the client asked for usage): its rate is tokens/s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric, SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from infra_inference.runtime.gateway.dispatch import Backend, Dispatcher
from infra_inference.runtime.metrics.identity import identified
from infra_inference.runtime.metrics.loop_local import Histogram
from infra_inference.wire import metrics as names
from infra_inference.wire.scrape import DEPLOYMENT_LABEL, VARIANT_LABEL

LABELS = (DEPLOYMENT_LABEL, VARIANT_LABEL)
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
# Streams run longer than requests: up to 5 minutes.
STREAM_BUCKETS_S = (*names.DURATION_BUCKETS_S, 60.0, 120.0, 300.0)


class _Occupancy(Collector):
    """Queue, in-flight and replica gauges read from the dispatcher at scrape time."""

    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], float]) -> None:
        self._dispatcher = dispatcher
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        gauges = {
            names.INFLIGHT_REQUESTS: ("Requests sent to a replica and not yet answered.", lambda b: b.inflight),
            names.QUEUE_DEPTH: ("Requests waiting at the gateway for a replica slot.", lambda b: len(b.queue)),
            names.READY_REPLICAS: ("Replicas the gateway can send to.", lambda b: b.ready(now)),
        }
        for name, (doc, read) in gauges.items():
            family = GaugeMetricFamily(name, doc, labels=LABELS)
            for b in self._dispatcher.backends.values():
                family.add_metric([b.config.deployment, b.config.variant], read(b))
            yield family


@dataclass
class BackendMetrics:
    """One backend's request-path numbers; the gateway looks them up once per request and updates them here."""

    labels: list[str]
    arrivals: int = 0
    served_count: int = 0
    service_time_s: float = 0.0
    duration: Histogram = field(default_factory=lambda: Histogram(names.DURATION_BUCKETS_S))
    first_token_s: Histogram = field(default_factory=lambda: Histogram(names.DURATION_BUCKETS_S))
    stream_duration: Histogram = field(default_factory=lambda: Histogram(STREAM_BUCKETS_S))
    streams_broken: int = 0
    tokens: int = 0
    by_code: dict[int, int] = field(default_factory=dict)

    def arrived(self) -> None:
        self.arrivals += 1

    def served(self, seconds: float) -> None:
        self.served_count += 1
        self.service_time_s += seconds

    def first_token(self, seconds: float) -> None:
        self.first_token_s.observe(seconds)

    def stream_ended(self, seconds: float, complete: bool) -> None:
        self.stream_duration.observe(seconds)
        if not complete:
            self.streams_broken += 1

    def count_tokens(self, usage: bytes | None) -> None:
        """Add the ``usage.completion_tokens`` in ``usage`` (an answer's body, or a stream's last usage event)."""
        if usage and b'"completion_tokens"' in usage:
            match = _COMPLETION_TOKENS.search(usage)
            if match:
                self.tokens += int(match[1])

    def observe(self, code: int, duration_s: float) -> None:
        self.by_code[code] = self.by_code.get(code, 0) + 1
        self.duration.observe(duration_s)


class _RequestPath(Collector):
    def __init__(self, counts: list[BackendMetrics]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(names.REQUESTS, "Requests answered by the gateway, by status code.",
                                       labels=[*LABELS, "code"])
        arrivals = CounterMetricFamily(names.ARRIVALS, "Requests received by the gateway.", labels=LABELS)
        served = SummaryMetricFamily(names.REPLICA_DURATION,
                                     "Sent to a replica to its answer: the service time, queueing excluded.",
                                     labels=LABELS)
        duration = HistogramMetricFamily(names.REQUEST_DURATION,
                                         "Arrival at the gateway to answer, queueing included.", labels=LABELS)
        first_token = HistogramMetricFamily(names.TIME_TO_FIRST_TOKEN, "Arrival at the gateway to the first byte "
                                            "of the answer's body (a stream's first token).", labels=LABELS)
        stream_duration = HistogramMetricFamily(names.STREAM_DURATION,
                                                "Arrival at the gateway to the end of a streamed answer.", labels=LABELS)
        broken = CounterMetricFamily(names.STREAMS_BROKEN, "Streamed answers that ended early (the replica broke "
                                     "off or went silent, or the client left).", labels=LABELS)
        tokens = CounterMetricFamily(names.GENERATED_TOKENS, "Tokens generated, from the usage answers carry.",
                                     labels=LABELS)
        for c in self._counts:
            for code, count in sorted(c.by_code.items()):
                requests.add_metric([*c.labels, str(code)], count)
            arrivals.add_metric(c.labels, c.arrivals)
            served.add_metric(c.labels, c.served_count, c.service_time_s)
            duration.add_metric(c.labels, c.duration.buckets(), c.duration.sum)
            first_token.add_metric(c.labels, c.first_token_s.buckets(), c.first_token_s.sum)
            stream_duration.add_metric(c.labels, c.stream_duration.buckets(), c.stream_duration.sum)
            broken.add_metric(c.labels, c.streams_broken)
            tokens.add_metric(c.labels, c.tokens)
        yield from (requests, duration, arrivals, served, first_token, stream_duration, broken, tokens)


class GatewayMetrics:
    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], float], service: str) -> None:
        registry = CollectorRegistry()
        self._of = {d: BackendMetrics([d, b.config.variant]) for d, b in dispatcher.backends.items()}
        registry.register(_RequestPath(list(self._of.values())))
        registry.register(_Occupancy(dispatcher, clock))
        self.registry = identified(registry, service)

    def of(self, backend: Backend) -> BackendMetrics:
        return self._of[backend.config.deployment]

    def render(self) -> bytes:
        return generate_latest(self.registry)
