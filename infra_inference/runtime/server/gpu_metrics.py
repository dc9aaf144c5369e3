"""GPU utilization and memory from NVML, only where a GPU exists.

Without a GPU (or without the NVML library) the metrics are absent rather
than zero: a zero would tell the autoscaler an idle GPU exists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra_inference.wire import metrics as names

log = logging.getLogger(__name__)


class GpuCollector(Collector):
    """Per-GPU utilization ratio and used memory, read from NVML at scrape time."""

    def __init__(self, pynvml: object, handles: list[object]) -> None:
        self._nvml = pynvml
        self._handles = handles

    @classmethod
    def detect(cls) -> GpuCollector | None:
        """A collector for the visible GPUs, or None when NVML finds none."""
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception as exc:  # ImportError, or NVMLError when no driver is loaded
            log.debug("no GPU metrics: %s", exc)
            return None
        if count == 0:
            return None
        return cls(pynvml, [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)])

    def collect(self) -> Iterator[Metric]:
        nvml = self._nvml
        utilization = GaugeMetricFamily(
            names.GPU_UTILIZATION, "Share of time the GPU was busy (0..1).", labels=["gpu"]
        )
        memory = GaugeMetricFamily(
            names.GPU_MEMORY_USED, "GPU memory in use, all processes.", labels=["gpu"]
        )
        for index, handle in enumerate(self._handles):
            utilization.add_metric([str(index)], nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)  # type: ignore[attr-defined]
            memory.add_metric([str(index)], float(nvml.nvmlDeviceGetMemoryInfo(handle).used))  # type: ignore[attr-defined]
        yield utilization
        yield memory
