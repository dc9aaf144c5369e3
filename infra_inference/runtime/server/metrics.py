"""Prometheus metrics of one server (names are a contract with the gateway and autoscaler).

The request path updates plain Python numbers, read into metric families at
scrape time. prometheus_client's Counter and Histogram take a lock on every
increment (five per request here), which costs more than the lock protects:
every update and every scrape runs on the event loop's thread.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from infra_inference.runtime.server.gpu_metrics import GpuCollector

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


class _Histogram:
    """Bucket counts and sum, for one thread."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # bucket le=bound holds value <= bound
        self._sum += value

    def family(self) -> HistogramMetricFamily:
        buckets = []
        cumulative = 0
        for bound, count in zip((*self._bounds, float("inf")), self._counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        return HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=self._sum)


class _RequestPath(Collector):
    """Request counts by status code, request durations and batch sizes."""

    def __init__(self) -> None:
        self.by_code: dict[int, int] = {}
        self.duration = _Histogram(
            "infra_inference_request_duration_seconds",
            "Time from receiving an inference request to its answer.",
            _DURATION_BUCKETS_S,
        )
        self.batch_size = _Histogram("infra_inference_batch_size", "Requests per model predict call.", _BATCH_BUCKETS)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "infra_inference_requests", "Inference requests answered, by HTTP status code.", labels=["code"]
        )
        for code, count in sorted(self.by_code.items()):
            requests.add_metric([str(code)], count)
        yield requests
        yield self.duration.family()
        yield self.batch_size.family()


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
        self._path = _RequestPath()
        self._load_phases: dict[str, float] = {}
        self.registry.register(self._path)
        self.registry.register(_LoadGauges(inflight, queue_depth))
        self.registry.register(_LoadPhases(self._load_phases))
        ProcessCollector(registry=self.registry)
        gpu = GpuCollector.detect()
        if gpu is not None:
            self.registry.register(gpu)

    def observe_request(self, code: int, duration_s: float) -> None:
        """Count one answered inference request and its duration (on the event loop's thread)."""
        by_code = self._path.by_code
        by_code[code] = by_code.get(code, 0) + 1
        self._path.duration.observe(duration_s)

    def observe_batch(self, size: int) -> None:
        self._path.batch_size.observe(size)

    def set_load_phases(self, phases: dict[str, float]) -> None:
        """Publish the cold-start breakdown (seconds per phase)."""
        self._load_phases.clear()
        self._load_phases.update(phases)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

