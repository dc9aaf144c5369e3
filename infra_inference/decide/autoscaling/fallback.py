"""The CPU fallback's size: a stage of its own, because its demand is the GPU side's overflow.

The gateway counts every request under the backend it was meant for (the GPU
one) and sends one to the CPU variant only when no GPU replica has a free
slot, so the CPU deployment's own reading is always 0. What it should serve is
the GPU side's shortfall:

- **saturated**: requests outstanding beyond the ready GPU replicas' slots:
  2 GPU replicas of 8 slots with 22 outstanding overflow by 22 - 16 = 6, which
  at 4 slots per CPU replica is ceil(6 / 4) = 2 CPU replicas;
- **GPU replicas pending** (asked for, not ready: no free GPU slot in the pool,
  or a cold start): at least one CPU replica while any request is outstanding,
  so they are not all waiting on one GPU replica's queue.

It wakes at once, never shrinks while the GPU side still overflows or waits,
and goes back to 0 once neither has been true for `cool_down_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Long enough that one quiet scrape between bursts keeps the CPU replica (its start costs a
# model load), short enough that a CPU replica does not idle for minutes once the GPUs caught up.
FALLBACK_COOL_DOWN_S = 30.0


@dataclass(frozen=True)
class GpuSide:
    """The GPU deployments of the service, summed (main, canary, A/B arms).

    Attributes:
        desired: Replicas asked for (spec.replicas).
        ready: Replicas ready to serve.
        outstanding: Requests queued or in flight at the gateway for them; None when unknown.
        slots_per_replica: Requests one GPU replica serves at once (max_concurrency).
    """

    desired: int
    ready: int
    outstanding: float | None
    slots_per_replica: int


@dataclass(frozen=True)
class FallbackState:
    last_needed: float | None = None


def fallback_replicas(gpu: GpuSide, current: int, slots_per_replica: int, max_replicas: int, state: FallbackState,
                      now: float, cool_down_s: float = FALLBACK_COOL_DOWN_S) -> tuple[int, str, FallbackState]:
    """(CPU replicas to ask for, why, new state), for `current` CPU replicas of `slots_per_replica` slots."""
    if gpu.outstanding is None:
        return current, f"hold at {current}: GPU demand unknown", state
    overflow = gpu.outstanding - gpu.ready * gpu.slots_per_replica
    pending = gpu.desired - gpu.ready
    needed = math.ceil(max(0.0, overflow) / slots_per_replica - 1e-9)
    if pending > 0 and gpu.outstanding > 0:
        needed = max(needed, 1)
    if needed > 0:
        desired = min(max_replicas, max(needed, current))
        why = f"{pending} GPU replica(s) pending" if pending > 0 and overflow <= 0 else \
            f"{overflow:g} request(s) beyond {gpu.ready} GPU replica(s)' slots"
        return desired, f"{desired} CPU: {why}", FallbackState(last_needed=now)
    if current > 0 and state.last_needed is not None and now - state.last_needed < cool_down_s:
        return current, f"hold at {current}: GPU side caught up {now - state.last_needed:.0f}s ago " \
                        f"(< {cool_down_s:g}s)", state
    return 0, "0 CPU: GPU replicas ready and not saturated", state
