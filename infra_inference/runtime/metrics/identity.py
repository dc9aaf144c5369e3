"""The `service` label every series of ours carries (wire/scrape.py), added at scrape time.

A collector over an inner registry: the request path and the collectors
stay unaware of it, and the label costs one copy of the samples per scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from infra_inference.wire.scrape import SERVICE_LABEL


class _Identified(Collector):
    def __init__(self, inner: CollectorRegistry, labels: dict[str, str]) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for metric in self._inner.collect():
            out = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            out.samples = [s._replace(labels={**self._labels, **s.labels}) for s in metric.samples]
            yield out


def identified(inner: CollectorRegistry, service: str) -> CollectorRegistry:
    """A registry exporting `inner`'s series, each labelled service=`service`; `inner` itself when unnamed.

    Unnamed is a process outside any InferenceService (a bare `infra-inference
    serve`): an empty label is no label to Prometheus, so none is added.
    """
    if not service:
        return inner
    outer = CollectorRegistry()
    outer.register(_Identified(inner, {SERVICE_LABEL: service}))
    return outer
