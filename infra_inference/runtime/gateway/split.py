"""Canary and A/B split: pick a variant by weight, at random or sticky by a header's hash.

Weights are percentages over the non-fallback backends: main 90 / canary 10
sends a request to the canary when its draw in [0, 100) falls in [90, 100).
A sticky draw is crc32(header) mod 10000 / 100, the same in every gateway
replica and every restart (Python's hash() is salted per process).
"""

from __future__ import annotations

import random
import zlib
from bisect import bisect_right
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


class WeightedSplit(Generic[T]):
    """Chooses among `choices` in proportion to `weights` (which need not sum to exactly 100)."""

    def __init__(self, choices: list[T], weights: list[float], rng: random.Random | None = None) -> None:
        kept = [(c, w) for c, w in zip(choices, weights, strict=True) if w > 0]
        if not kept:
            raise ValueError("a split needs at least one choice with a positive weight")
        self._choices = [c for c, _ in kept]
        self._bounds = list(accumulate(w for _, w in kept))
        self._rng = rng or random.Random()

    def pick(self, sticky_key: bytes | None = None) -> T:
        total = self._bounds[-1]
        if sticky_key is None:
            draw = self._rng.random() * total
        else:
            draw = (zlib.crc32(sticky_key) % 10_000) / 10_000 * total
        return self._choices[min(bisect_right(self._bounds, draw), len(self._choices) - 1)]
