"""`infra-inference dev`'s stack as real processes on 127.0.0.1: from zero, back to zero, a replica killed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from infra_inference.runtime.dev.load import LoadResult, run_phases
from infra_inference.runtime.dev.stack import DevStack
from infra_inference.specs.autoscale import ScalingSpec
from tests.runtime.server.support import ServerProcess, request, wait_until

GRACE_S = 2.0


def policy(**overrides: object) -> ScalingSpec:
    fields = {"metric": "concurrency", "target": 4.0, "min_replicas": 0, "max_replicas": 3,
              "scale_to_zero_after_s": GRACE_S, "stable_window_s": 5, "panic_window_s": 1, "scale_down_window_s": 2}
    fields.update(overrides)
    return ScalingSpec.parse(fields)


def load(stack: DevStack, seconds: float, clients: int) -> LoadResult:
    result = LoadResult()
    asyncio.run(run_phases(stack.url, "echo", ((seconds, clients),), result))
    return result


def replica_pids(stack: DevStack) -> list[int]:
    """Children of the autoscaler process: the local actuator's replicas."""
    autoscaler = stack._procs[1].pid
    children = Path(f"/proc/{autoscaler}/task/{autoscaler}/children").read_text().split()
    return [int(c) for c in children]


def cold_start_s(replicas: int) -> float:
    """The "model load" of the echo model on this machine now: exec to the first of `replicas` ready,
    all started at once, as the autoscaler starts them when a burst arrives at zero (on 2 cores three
    starting together take 1.5-2 s where one alone takes 0.6-0.9 s)."""
    start = time.monotonic()
    servers = [ServerProcess("--echo-delay-ms", "20") for _ in range(replicas)]
    try:
        wait_until(lambda: any(request(s.port, "GET", "/readyz").status == 200 for s in servers), timeout_s=30)
        return time.monotonic() - start
    finally:
        for server in servers:
            server.kill()


def test_from_zero_every_request_answered_then_back_to_zero_after_the_grace_period_not_before() -> None:
    baseline = cold_start_s(replicas=3)  # policy() allows 3, and a 12-client burst asks for all of them
    with DevStack(policy(), ["--echo-delay-ms", "20"], max_concurrency=4, tick_s=0.25) as stack:
        assert stack.decisions() == [] or stack.decisions()[-1]["desired"] == 0
        result = load(stack, 3.0, clients=12)
        assert result.failed == 0 and result.codes[200] > 0
        assert result.first_answer_s is not None and result.first_answer_s <= baseline + 1.0, \
            f"first answer {result.first_answer_s:.2f}s, replica cold start {baseline:.2f}s"
        ups = [d for d in stack.decisions() if d["desired"] > d["current"]]
        assert ups and ups[0]["current"] == 0 and max(d["desired"] for d in ups) >= 2
        wait_until(lambda: any(d["desired"] == 0 and d["current"] > 0 for d in stack.decisions()), timeout_s=30)
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
