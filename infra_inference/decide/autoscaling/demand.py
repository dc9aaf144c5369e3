"""How many replicas a metric reading asks for: the scaling formulas, one per kind of metric.

Totals (concurrency, throughput, custom) are service-wide, so the answer does
not depend on how many replicas exist: 42 requests in flight at a target of
5.6 per replica want 42 / 5.6 = 7.5 replicas (Little's law: 60 req/s x 0.7 s
is the same 42). Per-replica averages (utilization, latency) are relative to
the replicas that produced them: 4 ready replicas at 90 % GPU with a 70 %
target want 4 x 90 / 70 = 5.14 replicas, and with no ready replica there is
no reading at all.

For concurrency, the gateway's counters give Little's law directly
(`littles_law`): what the arrivals keep in flight, and the queue as work.
"""

from __future__ import annotations

from infra_inference.specs.autoscale import Metric

TOTAL_METRICS: tuple[Metric, ...] = ("concurrency", "throughput", "custom")


def replicas_wanted(metric: Metric, value: float, target: float, ready: int) -> float | None:
    """Fractional replicas the reading asks for; None when a per-replica average has no replica behind it."""
    if metric in TOTAL_METRICS:
        return value / target
    if ready == 0:
        return None
    return ready * value / target


def littles_law(arrived: float, seconds: float, service_s: float, queued: float) -> tuple[float, float]:
    """(concurrency the arrivals bring, seconds of queued work), both in replica-slot terms.

    200 arrivals in 2 s at 0.1 s of service each keep 100 x 0.1 = 10 requests
    in flight; 300 queued are 300 x 0.1 = 30 s of work. Counting those 300 as
    concurrency instead would ask for 31 times the slots the arrivals need.
    """
    return arrived / seconds * service_s, queued * service_s
