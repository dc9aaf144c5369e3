"""`infra-inference dev`'s stack as real processes on 127.0.0.1: from zero, back to zero, a replica killed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

from infra_inference.decide.autoscaling.decider import KEEP_WARM_COLD_STARTS
from infra_inference.runtime.dev.load import LoadResult, run_phases
from infra_inference.runtime.dev.stack import DevStack
from infra_inference.specs.autoscale import ScalingSpec
from tests.runtime.server.support import wait_until

GRACE_S = 2.0
TICK_S = 0.25


def policy(**overrides: object) -> ScalingSpec:
    fields = {"metric": "concurrency", "target": 4.0, "min_replicas": 0, "max_replicas": 3,
              "scale_to_zero_after_s": GRACE_S, "stable_window_s": 5, "panic_window_s": 1, "scale_down_window_s": 2}
    fields.update(overrides)
    return ScalingSpec.parse(fields)


def replica_pids(stack: DevStack) -> list[int]:
    """Children of the autoscaler process: the local actuator's replicas."""
    autoscaler = stack._procs[1].pid
    children = Path(f"/proc/{autoscaler}/task/{autoscaler}/children").read_text().split()
    return [int(c) for c in children]


def queued(stack: DevStack) -> float:
    # Other labels (the `service` every process of ours exports) may come before or after.
    found = re.search(r'infra_inference_queue_depth\{[^}]*deployment="dev"[^}]*\} (\S+)', stack.gateway_metrics())
    return float(found[1]) if found else 0.0


BURST = 12  # clients; policy() allows 3 replicas of 4 slots, and this burst asks for all of them


def test_from_zero_every_request_answered_then_back_to_zero_after_the_grace_period_not_before() -> None:
    with DevStack(policy(), ["--echo-delay-ms", "20"], max_concurrency=4, tick_s=TICK_S) as stack:
        assert stack.decisions() == [] or stack.decisions()[-1]["desired"] == 0
        # The gateway pokes the autoscaler on the burst's first request. On a loaded machine it can
        # look before the other 11 arrive, ask for 1 replica and hold there while it starts (the
        # decider does not buy replicas on a queue that grows while they start). So the autoscaler
        # waits, stopped, until the whole burst is queued: its first look sees all of it.
        autoscaler = stack._procs[1]
        result = LoadResult()

        async def burst() -> float:
            running = asyncio.create_task(run_phases(stack.url, "echo", ((3.0, BURST),), result))
            await asyncio.to_thread(wait_until, lambda: queued(stack) == BURST, 30)
            resumed = time.time()
            autoscaler.send_signal(signal.SIGCONT)
            await running
            return resumed

        autoscaler.send_signal(signal.SIGSTOP)
        try:
            resumed = asyncio.run(burst())
        finally:
            autoscaler.send_signal(signal.SIGCONT)
        assert result.failed == 0 and result.codes[200] > 0
        ups = [d for d in stack.decisions() if d["desired"] > d["current"]]
        assert ups and ups[0]["current"] == 0 and max(d["desired"] for d in ups) >= 2
        # The first answer waits one cold start, and at most 1 s more (poke, tick, discovery, dispatch).
        # The cold start is this run's own, spawn to ready, from the local actuator's log: one measured
        # apart, before, differs from it by seconds while a build loads the machine (8.8 s against 10).
        cold_starts_s = stack.replica_starts_s()
        cold_start_s = min(cold_starts_s)
        assert result.first_sent is not None and result.first_answer_s is not None
        first_answer_at = time.time() - (time.monotonic() - result.first_sent - result.first_answer_s)
        assert first_answer_at - resumed <= cold_start_s + 1.0, \
            f"first answer {first_answer_at - resumed:.2f}s after the burst was seen, cold start {cold_start_s:.2f}s"
        # The decider keeps replicas warm for KEEP_WARM_COLD_STARTS of the cold starts it saw when that is
        # longer than GRACE_S: 12 x 0.8 s on an idle machine, 12 x 8 s (past a fixed 30 s wait) under load.
        keep_warm_s = max(GRACE_S, KEEP_WARM_COLD_STARTS * (max(cold_starts_s) + TICK_S))
        wait_until(lambda: any(d["desired"] == 0 and d["current"] > 0 for d in stack.decisions()),
                   timeout_s=keep_warm_s + 30)
        to_zero = next(d for d in stack.decisions() if d["desired"] == 0 and d["current"] > 0)
        assert to_zero["at"] >= result.last_answer_at + GRACE_S - 0.05, to_zero  # clock granularity of the log
        assert "idle" in to_zero["reason"]
        wait_until(lambda: replica_pids(stack) == [], timeout_s=30)


def test_kill_9_of_one_replica_under_steady_load_fails_no_request() -> None:
    steady = policy(min_replicas=3, max_replicas=3, scale_to_zero_after_s=0)
    with DevStack(steady, ["--echo-delay-ms", "30"], max_concurrency=4, tick_s=0.25) as stack:
        wait_until(lambda: len(replica_pids(stack)) == 3 and stack.gateway_metrics().count(
            'infra_inference_ready_replicas{deployment="dev",service="dev",variant="main"} 3.0') == 1, timeout_s=30)
        result = LoadResult()

        async def load_and_kill() -> None:
            running = asyncio.create_task(run_phases(stack.url, "echo", ((4.0, 10),), result))
            await asyncio.sleep(1.0)
            os.kill(replica_pids(stack)[0], signal.SIGKILL)
            await running

        asyncio.run(load_and_kill())
        assert result.failed == 0, result.codes
        assert result.codes[200] > 100
        wait_until(lambda: len(replica_pids(stack)) == 3, timeout_s=30)  # replaced
