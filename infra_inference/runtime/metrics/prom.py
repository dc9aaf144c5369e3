"""Reading Prometheus text exposition: samples by name and labels, and cumulative histogram buckets."""

from __future__ import annotations

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
