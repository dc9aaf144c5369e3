"""The CPU fallback stage: wakes on the GPU side's overflow or pending replicas, back to 0 after the cool-down."""

from __future__ import annotations

import pytest

from infra_inference.decide.autoscaling.fallback import FALLBACK_COOL_DOWN_S, FallbackState, GpuSide, fallback_replicas


@pytest.mark.parametrize(("gpu", "current", "expected"), [
    # (desired, ready, outstanding, slots) -> CPU replicas at 4 slots each, at most 5
    ((2, 2, 10, 8), 0, 0),      # 10 outstanding fit 16 GPU slots
    ((2, 2, 16, 8), 0, 0),      # exactly full: nothing waits
    ((2, 2, 22, 8), 0, 2),      # 6 beyond 16 slots: ceil(6 / 4) = 2
    ((2, 2, 100, 8), 0, 5),     # capped at max_replicas
    ((2, 1, 3, 8), 0, 1),       # a GPU replica pending (no free slot in the pool) and demand: wake
    ((2, 1, 0, 8), 0, 0),       # pending but idle: nothing to serve
    ((1, 0, 1, 8), 0, 1),       # cold start from zero GPU replicas: the first request gets a CPU replica
    ((2, 2, 22, 8), 3, 3),      # never shrinks while overflowing
    ((0, 0, 0, 8), 0, 0),       # idle service
])
def test_fallback_size(gpu: tuple[int, int, float, int], current: int, expected: int) -> None:
    desired, _, _ = fallback_replicas(GpuSide(*gpu), current, slots_per_replica=4, max_replicas=5,
                                      state=FallbackState(), now=100.0)
    assert desired == expected


def test_unknown_demand_holds() -> None:
    desired, reason, _ = fallback_replicas(GpuSide(2, 1, None, 8), 1, 4, 5, FallbackState(), now=0.0)
    assert desired == 1 and "unknown" in reason


def test_back_to_zero_only_after_the_cool_down() -> None:
    state = FallbackState()
    desired, _, state = fallback_replicas(GpuSide(2, 1, 5, 8), 0, 4, 5, state, now=0.0)  # GPU pending
    assert desired == 1
    # The GPU replica is ready and the load fits: hold the CPU replica through the cool-down, then retire it.
    for t in (1.0, FALLBACK_COOL_DOWN_S - 1):
        desired, reason, state = fallback_replicas(GpuSide(2, 2, 5, 8), 1, 4, 5, state, now=t)
        assert desired == 1, reason
    desired, _, _ = fallback_replicas(GpuSide(2, 2, 5, 8), 1, 4, 5, state, now=FALLBACK_COOL_DOWN_S)
    assert desired == 0
