"""What the decider learns from the replicas and the traffic: the cold start it sees, and the idle gaps.

Both are values (frozen), updated once a decision, bounded in size.

The cold start is learned, not configured: each replica asked for is
remembered with the time it was asked for; when the ready count rises, the
oldest asks became ready, and their age is a sample (asked at 100 s, ready
seen at 131 s: 31 s, to the tick). A fall cancels the newest asks first, as
a ReplicaSet deletes not-ready pods first.

Idle gaps are the stretches with nothing arriving or outstanding; the last
GAPS_KEPT of them say how long this service usually idles before work
returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
        if len(self.seconds) < 3:
            return None
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
