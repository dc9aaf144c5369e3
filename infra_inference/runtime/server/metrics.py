"""Prometheus metrics of one server (names are a contract with the gateway and autoscaler)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra_inference.runtime.server.gpu import GpuCollector

# Seconds; dense below 100 ms, where the latency SLOs of online inference sit.
_DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _LoadGauges(Collector):
    """Occupancy read at scrape time, so the request path never touches a gauge lock."""

    def __init__(self, inflight: Callable[[], int], queue_depth: Callable[[], int]) -> None:
        self._inflight = inflight
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "infra_inference_inflight_requests", "Requests inside the model right now.", value=self._inflight()
        )
        yield GaugeMetricFamily(
            "infra_inference_queue_depth", "Requests accepted and waiting for the model.", value=self._queue_depth()
        )


class _LoadPhases(Collector):
    def __init__(self, phases: dict[str, float]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "infra_inference_model_load_seconds",
            "Cold-start time by phase: fetch (into the node cache), read (into host memory), to_device, total.",
            labels=["phase"],
        )
        for phase, seconds in self._phases.items():
            family.add_metric([phase], seconds)
        yield family


class ServerMetrics:
    """The server's registry and the instruments the request path updates.

    Args:
        inflight: Reads the number of requests inside the model.
        queue_depth: Reads the number of requests waiting for it.
    """

    def __init__(self, inflight: Callable[[], int], queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "infra_inference_requests",
            "Inference requests answered, by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "infra_inference_request_duration_seconds",
            "Time from receiving an inference request to its answer.",
            buckets=_DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._batch_size = Histogram(
            "infra_inference_batch_size",
            "Requests per model predict call.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._load_phases: dict[str, float] = {}
        self.registry.register(_LoadGauges(inflight, queue_depth))
        self.registry.register(_LoadPhases(self._load_phases))
        ProcessCollector(registry=self.registry)
        gpu = GpuCollector.detect()
        if gpu is not None:
            self.registry.register(gpu)
        # Children per status code, cached: labels() takes a lock and builds a key each call.
        self._by_code: dict[int, Counter] = {}

    def observe_request(self, code: int, duration_s: float) -> None:
        """Count one answered inference request and its duration."""
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._requests.labels(code=str(code))
        child.inc()
        self._duration.observe(duration_s)

    def observe_batch(self, size: int) -> None:
        self._batch_size.observe(size)

    def set_load_phases(self, phases: dict[str, float]) -> None:
        """Publish the cold-start breakdown (seconds per phase)."""
        self._load_phases.clear()
        self._load_phases.update(phases)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

