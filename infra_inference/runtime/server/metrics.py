"""Prometheus metrics of one server (names are a contract with the gateway and autoscaler: wire/metrics.py).

The request path updates plain Python numbers (runtime/metrics/loop_local.py,
five updates per request here), read into metric families at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from infra_inference.runtime.metrics.identity import identified
from infra_inference.runtime.metrics.loop_local import Histogram
from infra_inference.runtime.server.gpu_metrics import GpuCollector
from infra_inference.wire import metrics as names

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _LoadGauges(Collector):
    """Occupancy read at scrape time, so the request path never touches a gauge lock."""

    def __init__(self, inflight: Callable[[], int], queue_depth: Callable[[], int]) -> None:
        self._inflight = inflight
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(names.INFLIGHT_REQUESTS, "Requests inside the model right now.", value=self._inflight())
        yield GaugeMetricFamily(names.QUEUE_DEPTH, "Requests accepted and waiting for the model.",
                                value=self._queue_depth())


class _RequestPath(Collector):
    """Request counts by status code, request durations and batch sizes."""

    def __init__(self) -> None:
        self.by_code: dict[int, int] = {}
        self.duration = Histogram(names.DURATION_BUCKETS_S)
        self.batch_size = Histogram(_BATCH_BUCKETS)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(names.REQUESTS, "Inference requests answered, by HTTP status code.",
                                       labels=["code"])
        for code, count in sorted(self.by_code.items()):
            requests.add_metric([str(code)], count)
        yield requests
        yield HistogramMetricFamily(names.REQUEST_DURATION, "Time from receiving an inference request to its answer.",
                                    buckets=self.duration.buckets(), sum_value=self.duration.sum)
        yield HistogramMetricFamily(names.BATCH_SIZE, "Requests per model predict call.",
                                    buckets=self.batch_size.buckets(), sum_value=self.batch_size.sum)


class _LoadPhases(Collector):
    def __init__(self, phases: dict[str, float]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            names.MODEL_LOAD,
            ("Cold-start time by phase: fetch (into the node cache), read (into host memory), to_device, total; "
             "fetch and read overlap when the weights stream."),
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
        service: The InferenceService's name, every series' `service` label ("": none).
    """

    def __init__(self, inflight: Callable[[], int], queue_depth: Callable[[], int], service: str = "") -> None:
        registry = CollectorRegistry()
        self._path = _RequestPath()
        self._load_phases: dict[str, float] = {}
        registry.register(self._path)
        registry.register(_LoadGauges(inflight, queue_depth))
        registry.register(_LoadPhases(self._load_phases))
        ProcessCollector(registry=registry)
        gpu = GpuCollector.detect()
        if gpu is not None:
            registry.register(gpu)
        self.registry = identified(registry, service)

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

