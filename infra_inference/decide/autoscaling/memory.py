"""What the decider learns from the replicas and the traffic: the cold start it sees, and the idle gaps.

Both are values (frozen), updated once a decision, bounded in size.

The cold start is learned, not configured: each replica asked for is
remembered with the time it was asked for; when the ready count rises, the
oldest asks became ready, and their age is a sample (asked at 100 s, ready
seen at 131 s: 31 s, to the tick). A fall cancels the newest asks first, as
a ReplicaSet deletes not-ready pods first.

Idle gaps are the stretches with nothing arriving or outstanding; the last
GAPS_KEPT of them say how long this service usually idles before work
returns, and the wakes after them how many replicas it asks for at once
when it does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

# Enough gaps for a quantile that one odd gap does not move, few enough to follow a change in
# use within an hour of a small service's ~25 gaps.
GAPS_KEPT = 12
# Half the weight on the newest cold start: a node pool that starts pulling images again
# (cache evicted) shows within two wakes.
_COLD_START_WEIGHT = 0.5


@dataclass(frozen=True)
class ColdStarts:
    """Ask times of the replicas not yet ready (oldest first), and the seconds a cold start took lately."""

    asks: tuple[float, ...] = ()
    estimate_s: float | None = None

    def seen(self, now: float, current: int, ready: int) -> ColdStarts:
        """Reconcile with the replicas now: asks beyond those still starting became ready."""
        starting = max(0, current - ready)
        if starting > len(self.asks):  # someone else scaled up, or a replica restarted: starting from now
            return replace(self, asks=self.asks + (now,) * (starting - len(self.asks)))
        if starting == len(self.asks):
            return self
        done, rest = self.asks[:len(self.asks) - starting], self.asks[len(self.asks) - starting:]
        sample = now - done[-1]
        estimate = sample if self.estimate_s is None else \
            _COLD_START_WEIGHT * sample + (1 - _COLD_START_WEIGHT) * self.estimate_s
        return ColdStarts(rest, estimate)

    def asked(self, now: float, current: int, desired: int) -> ColdStarts:
        """Remember a scale-up's asks; a fall cancels the newest asks first."""
        if desired > current:
            return replace(self, asks=self.asks + (now,) * (desired - current))
        if desired < current and self.asks:
            return replace(self, asks=self.asks[:max(0, len(self.asks) - (current - desired))])
        return self

    @property
    def oldest_ask(self) -> float | None:
        return self.asks[0] if self.asks else None


@dataclass(frozen=True)
class Gaps:
    """The last GAPS_KEPT idle gaps, in seconds, oldest first."""

    seconds: tuple[float, ...] = ()

    def ended(self, gap_s: float) -> Gaps:
        return Gaps((*self.seconds, gap_s)[-GAPS_KEPT:])

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the gaps kept (nearest rank); None with fewer than 3."""
        return _quantile(self.seconds, q)


@dataclass(frozen=True)
class Wakes:
    """The most replicas each of the last GAPS_KEPT wakes asked for in its first seconds, and the wake open now.

    A wake opens when work returns after an idle gap and records the highest
    recommendation it sees for `span_s`: work back at 100 s asking 2, 4, 3
    by 110 s (span 10 s) records 4.
    """

    levels: tuple[int, ...] = ()
    open_since: float | None = None
    open_max: int = 0

    def started(self, now: float) -> Wakes:
        """A wake at `now` (one still open is recorded as it stands)."""
        return Wakes(self._closed().levels, now, 0)

    def saw(self, now: float, recommended: int, span_s: float) -> Wakes:
        """A recommendation at `now`: counted while the open wake is under `span_s` old; after, it is recorded."""
        if self.open_since is None:
            return self
        if now - self.open_since > span_s:
            return self._closed()
        return replace(self, open_max=max(self.open_max, recommended))

    def _closed(self) -> Wakes:
        if self.open_since is None:
            return self
        return Wakes((*self.levels, self.open_max)[-GAPS_KEPT:])

    def quantile(self, q: float) -> int | None:
        """The q-quantile of the recorded wakes (nearest rank); None with fewer than 3."""
        return _quantile(self.levels, q)


Count = TypeVar("Count", int, float)


def _quantile(values: tuple[Count, ...], q: float) -> Count | None:
    if len(values) < 3:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
