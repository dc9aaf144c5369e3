"""Reading Prometheus text exposition: samples by name and labels, and quantiles from histogram buckets."""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """{sample name: [(labels, value), ...]} for every sample in `text`."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def total(samples: Samples, name: str, **match: str) -> float:
    """Sum of `name` over samples whose labels include `match`."""
    return sum(v for labels, v in samples.get(name, []) if all(labels.get(k) == m for k, m in match.items()))


def buckets(samples: Samples, name: str, **match: str) -> dict[float, float]:
    """Cumulative histogram counts {upper bound: count} of `name`_bucket, summed over other labels."""
    out: dict[float, float] = {}
    for labels, v in samples.get(f"{name}_bucket", []):
        if all(labels.get(k) == m for k, m in match.items()):
            le = float(labels["le"])
            out[le] = out.get(le, 0.0) + v
    return out


def quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """PromQL's histogram_quantile: linear inside the bucket that holds rank q x count.

    Counts 60 under 0.05 s, 100 under 0.1 s: p95 is rank 95, in (0.05, 0.1],
    35 of that bucket's 40 -> 0.05 + 0.05 x 35/40 = 0.094 s. None for no observations.
    """
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = cumulative[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower  # the +Inf bucket has no width: its lower bound is the best estimate
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower
