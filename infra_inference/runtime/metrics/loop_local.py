"""Instruments for the request path of a service that updates them on one thread (its event loop).

prometheus_client's Counter and Histogram take a lock on every increment,
which costs more than the lock protects here: every update and every scrape
runs on the event loop's thread. So the request path updates plain Python
numbers, and a Collector turns them into metric families at scrape time.
The model server and the gateway both count this way.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client.utils import floatToGoString


class Histogram:
    """Bucket counts and sum, for one thread; `bounds` are the upper bounds, +Inf is added."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # bucket le=bound holds value <= bound
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as HistogramMetricFamily takes them."""
        out = []
        cumulative = 0
        for bound, count in zip((*self._bounds, float("inf")), self._counts, strict=True):
            cumulative += count
            out.append((floatToGoString(bound), cumulative))
        return out
