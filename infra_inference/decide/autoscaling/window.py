"""Time windows over samples: the stable and panic averages of the decider.

A window holds (time, value) samples and is pruned to the longest window
anyone asks about, so its size stays bounded: at one sample a second and a
60 s stable window it never holds more than 61 samples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Samples, oldest first; a value, not a container: `add` returns a new window."""

    samples: tuple[tuple[float, float], ...] = ()

    def add(self, now: float, value: float, keep_s: float) -> Window:
        """This window plus `value` at `now`, without samples older than `keep_s`."""
        kept = tuple(s for s in self.samples if now - s[0] < keep_s)
        return Window((*kept, (now, value)))

    def values(self, now: float, span_s: float) -> list[float]:
        """Values sampled within the last `span_s` seconds (a sample exactly `span_s` old is out)."""
        return [v for t, v in self.samples if now - t < span_s]

    def mean(self, now: float, span_s: float) -> float | None:
        """Mean over the last `span_s` seconds; None when nothing was sampled in it."""
        vs = self.values(now, span_s)
        return sum(vs) / len(vs) if vs else None

    def rise_per_s(self, now: float, span_s: float, chance: float = 0.0) -> float:
        """How fast the value rose over the last `span_s` seconds, from its first sample there to its last, less
        `chance` (a rise that small proves nothing); 0 if it fell or there are fewer than two samples (10 queued
        at 100 s, 40 at 105 s: 6 a second; less a chance of 10, 4 a second)."""
        vs = [(t, v) for t, v in self.samples if now - t < span_s]
        if len(vs) < 2 or vs[-1][0] <= vs[0][0]:
            return 0.0
        return max(0.0, (vs[-1][1] - vs[0][1] - chance) / (vs[-1][0] - vs[0][0]))

    def total_after_first(self, now: float, span_s: float) -> float:
        """The sum of the values sampled within the last `span_s` seconds but the first: for counts each taken
        over the interval before its sample, what came between the first sample and the last."""
        return sum([v for t, v in self.samples if now - t < span_s][1:])
