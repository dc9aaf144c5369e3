"""Dynamic batching: merged under load, bounded by max_batch_size, answers routed to their requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pytest
import uvloop

from infra_inference.runtime.server.errors import BadRequest, QueueFull, Timeout
from infra_inference.runtime.server.model import InferRequest, Tensors
from infra_inference.runtime.server.scheduler import Scheduler
from tests.runtime.server.support import post, scrape, server_in_thread, v2_body

T = TypeVar("T")


def test_concurrent_load_forms_batches_above_one_and_within_max() -> None:
    max_batch_size = 4
    with server_in_thread(
        model="echo", max_concurrency=4, max_queue=64, max_batch_size=max_batch_size, max_wait_ms=20, echo_delay_ms=20
    ) as (port, _):
        with ThreadPoolExecutor(32) as pool:
            replies = list(pool.map(lambda i: (i, post(port, "/v2/models/echo/infer", v2_body([float(i)]))), range(64)))
        for i, reply in replies:
            assert reply.status == 200 and reply.json()["outputs"][0]["data"] == [float(i)]
        metrics = scrape(port)
        batches = metrics["infra_inference_batch_size_count"]
        assert metrics["infra_inference_batch_size_sum"] == 64
        assert batches < 64, "some requests must have been merged"
        assert metrics['infra_inference_batch_size_bucket{le="4.0"}'] == batches, "no batch above max_batch_size"


class _Recorder:
    """A predict that records batch sizes, takes a little time, and rejects negative inputs."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def __call__(self, batch: list[InferRequest]) -> Sequence[Tensors]:
        self.sizes.append(len(batch))
        await asyncio.sleep(0.01)
        if any(float(r.inputs["x"][0]) < 0 for r in batch):
            raise BadRequest("negative input")
        return [{"y": r.inputs["x"] * 10} for r in batch]


def _run(coro: Coroutine[Any, Any, T], loop_kind: str = "asyncio") -> T:
    # Not asyncio.run(): it leaves the main thread without a current loop, which breaks
    # later tests in the same session that call asyncio.get_event_loop() (Pulumi's mocks).
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _req(value: float) -> InferRequest:
    return InferRequest({"x": np.array([value])})


@pytest.mark.parametrize("max_wait_s", [0.0, 0.005])
def test_scheduler_batches_respect_max_and_route_each_answer(max_wait_s: float) -> None:
    async def scenario() -> tuple[list[int], list[float]]:
        predict = _Recorder()
        scheduler = Scheduler(predict, max_concurrency=6, max_queue=100, max_batch_size=3, max_wait_s=max_wait_s)
        outputs = await asyncio.gather(*(scheduler.submit(_req(i)) for i in range(30)))
        return predict.sizes, [float(o["y"][0]) for o in outputs]

    sizes, values = _run(scenario())
    assert values == [10.0 * i for i in range(30)]
    assert sum(sizes) == 30 and max(sizes) == 3 and all(1 <= s <= 3 for s in sizes)


def test_one_bad_request_does_not_fail_its_batch_mates() -> None:
    async def scenario() -> list[object]:
        scheduler = Scheduler(_Recorder(), max_concurrency=4, max_queue=10, max_batch_size=4, max_wait_s=0.05)
        return await asyncio.gather(*(scheduler.submit(_req(v)) for v in (1.0, -1.0, 2.0, 3.0)), return_exceptions=True)

    results = _run(scenario())
    assert isinstance(results[1], BadRequest)
    assert [float(r["y"][0]) for r in results if isinstance(r, dict)] == [10.0, 20.0, 30.0]


def test_a_lone_request_waits_at_most_max_wait_for_batch_mates() -> None:
    async def scenario() -> float:
        scheduler = Scheduler(_Recorder(), max_concurrency=4, max_queue=10, max_batch_size=4, max_wait_s=0.05)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await scheduler.submit(_req(1.0))
        return loop.time() - start

    # Lower bound only: the batch was held open for the wait (no upper timing bound in tests).
    assert _run(scenario()) >= 0.05


def test_queue_stays_bounded_while_a_partial_batch_runs() -> None:
    async def scenario() -> tuple[int, int]:
        release = asyncio.Event()

        async def slow(batch: list[InferRequest]) -> Sequence[Tensors]:
            await release.wait()
            return [r.inputs for r in batch]

        scheduler = Scheduler(slow, max_concurrency=4, max_queue=3, max_batch_size=4, max_wait_s=0.005)
        first = [asyncio.ensure_future(scheduler.submit(_req(i))) for i in range(2)]
        await asyncio.sleep(0.05)  # max_wait passed: a partial batch of 2 is in the model, 2 slots free
        assert scheduler.inflight == 2
        rest = [asyncio.ensure_future(scheduler.submit(_req(i))) for i in range(20)]
        await asyncio.sleep(0.01)
        refused = sum(1 for f in rest if f.done() and isinstance(f.exception(), QueueFull))
        depth = scheduler.queue_depth
        release.set()
        await asyncio.gather(*first, *rest, return_exceptions=True)
        return depth, refused

    depth, refused = _run(scenario())
    assert depth == 3 + 2  # max_queue, plus the two free slots waiting to form a full batch
    assert refused == 20 - depth


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_batch_recalled_before_its_task_starts_still_gives_its_slot_back(loop_kind: str) -> None:
    """Under overload a deadline can pass before the batch dispatched for it first runs (uvloop runs due timers
    before ready tasks): the task is cancelled before its body, `finally` included, and the slot must come back."""
    async def scenario() -> tuple[list[object], int, Tensors]:
        scheduler = Scheduler(_Recorder(), max_concurrency=1, max_queue=4, timeout_s=0.05)
        answers: list[object] = []
        scheduler.enqueue(_req(1.0), answers.append)  # dispatched now: its batch's task is created, not started
        time.sleep(0.1)  # the loop held past the deadline (a GC pause, a large encode)
        await asyncio.sleep(0.05)
        inflight = scheduler.inflight
        return answers, inflight, await scheduler.submit(_req(2.0))

    answers, inflight, next_answer = _run(scenario(), loop_kind)
    assert [type(a) for a in answers] == [Timeout]
    assert inflight == 0, "the recalled batch's slot is free"
    assert float(next_answer["y"][0]) == 20.0
