"""Admission and dynamic batching in front of one model.

A request is either refused at once (queue full -> ``QueueFull``, closed ->
``Draining``) or accepted into a FIFO queue, from which it is dispatched in a
batch as soon as concurrency slots are free. Once accepted, it is always
answered exactly once: with its outputs, with the model's error, or at its
deadline with ``Timeout`` (leaving the queue if it had not reached the model).

A batch still in the model once every request in it has been answered 504 is
cancelled: a coroutine ``predict`` stops there and its slots come back; one
on a thread cannot be stopped, and keeps its slots until it returns. Slots held
past their deadline are counted (``overdue_slots``, ``overdue_since``), so that
health checks can say a replica is wedged.

Answers go to a callback, called from the batch's task or the deadline timer:
the HTTP layer writes the response right there, with no task per request and
no extra trip through the event loop. ``submit`` wraps that in a coroutine.

Slots count requests, not batches: with ``max_concurrency=8`` and
``max_batch_size=4`` at most two full batches run at once. A batch is sent
when it is full (``max_batch_size``) or when its oldest request has waited
``max_wait_s``, and only once there are slots for all of it: under a backlog,
slots freed one by one are pooled into the next full batch instead of being
spent on batches of one. With ``max_wait_s=0`` whatever is queued goes as
soon as it fits, so there is no batching delay under light load.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from infra_inference.runtime.server.errors import BadRequest, Draining, ModelFailed, QueueFull, RequestError, Timeout
from infra_inference.runtime.server.model import InferRequest, Tensors

log = logging.getLogger(__name__)

Predict = Callable[[list[InferRequest]], Awaitable[Sequence[Tensors]]]
Reply = Callable[[Tensors | RequestError], None]
"""Receives one accepted request's outcome: its outputs, or the error to answer with."""


class _Pending:
    __slots__ = ("request", "reply", "enqueued_s", "batch")

    def __init__(self, request: InferRequest, reply: Reply, enqueued_s: float) -> None:
        self.request = request
        self.reply = reply
        self.enqueued_s = enqueued_s
        self.batch: _Batch | None = None  # once dispatched


class _Batch:
    __slots__ = ("pending", "started", "task")

    def __init__(self, pending: list[_Pending]) -> None:
        self.pending = pending
        self.task: asyncio.Task[None] | None = None
        self.started = False  # its task has begun: its own `finally` returns the slots


class Scheduler:
    """Bounded FIFO queue, concurrency slots and batch formation for one model.

    Args:
        predict: Runs one batch through the model, returning one output per request.
        max_concurrency: Most requests inside the model at once.
        max_queue: Most requests waiting for a slot; one more is refused.
        max_batch_size: Most requests per ``predict`` call.
        max_wait_s: Longest the oldest queued request waits for its batch to fill.
        timeout_s: Longest an accepted request waits for its answer, queue time included.
        retry_after_s: Sent back to refused clients as ``Retry-After``.
        on_batch: Called with each dispatched batch's size (for the histogram).
    """

    def __init__(
        self,
        predict: Predict,
        *,
        max_concurrency: int,
        max_queue: int,
        max_batch_size: int = 1,
        max_wait_s: float = 0.0,
        timeout_s: float = 30.0,
        retry_after_s: int = 1,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._predict = predict
        self._max_concurrency = max_concurrency
        self._max_queue = max_queue
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._timeout_s = timeout_s
        self._retry_after = ((b"retry-after", str(retry_after_s).encode()),)
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._batches: set[asyncio.Task[None]] = set()
        # Batches whose every request was answered by its deadline, still holding slots: since when.
        self._overdue: dict[_Batch, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        # Accepted and not yet answered, oldest first, with their deadlines. Every request gets
        # the same timeout_s, so deadlines come in arrival order and one timer, set for the
        # oldest, serves them all: cheaper than a timer per request (uvloop gives each its
        # own libuv timer), and only open requests are held.
        self._unanswered: dict[_Pending, float] = {}
        self._deadline_timer: asyncio.TimerHandle | None = None
        # Bound at the first request: a scheduler serves one event loop, and on Python 3.11
        # asyncio.get_running_loop() costs a getpid() system call, too much for once per request.
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.inflight = 0
        self.accepting = True

    @property
    def queue_depth(self) -> int:
        """Requests accepted but not yet inside the model."""
        return len(self._queue)

    @property
    def overdue_slots(self) -> int:
        """Slots held by batches whose requests have all been answered 504 (still in the model)."""
        return sum(len(batch.pending) for batch in self._overdue)

    @property
    def overdue_since(self) -> float | None:
        """Since when (loop time) the longest-overdue batch holds its slots; None when none does."""
        return min(self._overdue.values(), default=None)

    def close(self) -> None:
        """Refuse new requests from now on; those already accepted still complete."""
        self.accepting = False

    def enqueue(self, request: InferRequest, reply: Reply) -> None:
        """Admit one request; ``reply`` gets its outcome later, exactly once (never before this returns).

        Raises:
            Draining: The scheduler is closed (``reply`` is never called).
            QueueFull: ``max_queue`` requests are already waiting (``reply`` is never called).
        """
        self._admit(request, reply)

    async def submit(self, request: InferRequest) -> Tensors:
        """Admit one request and wait for its outputs.

        Raises:
            Draining: The scheduler is closed.
            QueueFull: ``max_queue`` requests are already waiting.
            Timeout: No answer within ``timeout_s``.
            RequestError: The model failed or rejected the input.
        """
        future: asyncio.Future[Tensors] = asyncio.get_running_loop().create_future()

        def reply(outcome: Tensors | RequestError) -> None:
            if not future.done():  # cancelled meanwhile: nobody waits for it
                if isinstance(outcome, RequestError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

        pending = self._admit(request, reply)
        try:
            return await future
        except asyncio.CancelledError:
            self._withdraw(pending)  # the caller went away
            raise

    def _admit(self, request: InferRequest, reply: Reply) -> _Pending:
        if not self.accepting:
            raise Draining("server is draining; retry on another replica")
        # Requests that free slots can take (now, or once a batch fills) are not a backlog;
        # beyond them at most max_queue wait. E.g. 4 slots, 2 busy, max_queue 8: 10 may queue.
        if len(self._queue) >= self._max_queue + self._max_concurrency - self.inflight:
            raise QueueFull(
                f"model is at max_concurrency and its queue is full ({self._max_queue})", headers=self._retry_after
            )
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        pending = _Pending(request, reply, loop.time())
        deadline_s = pending.enqueued_s + self._timeout_s
        self._unanswered[pending] = deadline_s
        if self._deadline_timer is None:
            self._deadline_timer = loop.call_at(deadline_s, self._on_deadline)
        self._queue.append(pending)
        self._dispatch()
        return pending

    def _answer(self, pending: _Pending, outcome: Tensors | RequestError) -> None:
        if self._unanswered.pop(pending, None) is None:
            return  # timed out (or withdrawn) before the model returned; its result is dropped
        try:
            pending.reply(outcome)
        except Exception:
            log.exception("delivering an answer failed")

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        now = self._loop.time()
        while self._unanswered:
            pending, deadline_s = next(iter(self._unanswered.items()))
            if deadline_s > now:
                self._deadline_timer = self._loop.call_at(deadline_s, self._on_deadline)
                return
            self._leave_queue(pending)
            self._answer(pending, Timeout(f"no answer within timeout_s={self._timeout_s}"))
            self._recall(pending.batch, now)

    def _recall(self, batch: _Batch | None, now: float) -> None:
        """Cancel a batch nobody waits for any more (a coroutine predict returns its slots at once)."""
        if batch is None or batch in self._overdue or any(p in self._unanswered for p in batch.pending):
            return
        self._overdue[batch] = now
        assert batch.task is not None
        batch.task.cancel()
        if not batch.started:
            # A task cancelled before its first step never runs its body, `finally` included (a deadline
            # due in the loop pass that dispatched it, under overload): its slots come back here or never.
            self._release(batch)

    def _withdraw(self, pending: _Pending) -> None:
        """Forget a request whose caller went away: no answer is due any more."""
        self._unanswered.pop(pending, None)
        self._leave_queue(pending)

    def _leave_queue(self, pending: _Pending) -> None:
        # Still queued: it never reaches the model. Already in a batch: the batch's result for it is dropped.
        try:
            self._queue.remove(pending)
        except ValueError:
            pass

    def _dispatch(self) -> None:
        loop = self._loop
        while self._queue:
            size = min(self._max_batch_size, len(self._queue))
            if size > self._max_concurrency - self.inflight:
                # Wait for slots rather than send a runt batch: something is running
                # (size <= max_concurrency), and its completion dispatches again.
                return
            if size < self._max_batch_size:
                due_s = self._queue[0].enqueued_s + self._max_wait_s
                if loop.time() < due_s:
                    if self._timer is None:
                        self._timer = loop.call_at(due_s, self._on_timer)
                    return
            batch = _Batch([self._queue.popleft() for _ in range(size)])
            for pending in batch.pending:
                pending.batch = batch
            self.inflight += size
            # The loop holds tasks weakly: _batches keeps each one until it ends.
            batch.task = loop.create_task(self._run(batch))
            self._batches.add(batch.task)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    async def _run(self, batch: _Batch) -> None:
        batch.started = True
        self._on_batch(len(batch.pending))
        try:
            await self._settle(batch.pending)
        finally:
            # Here rather than in a done callback, which would cost one more pass of the loop.
            self._release(batch)

    def _release(self, batch: _Batch) -> None:
        """A batch's slots are free: dispatch what waits for them."""
        self.inflight -= len(batch.pending)
        self._overdue.pop(batch, None)
        self._batches.discard(batch.task)  # type: ignore[arg-type]
        self._dispatch()

    async def _settle(self, batch: list[_Pending]) -> None:
        try:
            outputs = await self._predict([p.request for p in batch])
            if len(outputs) != len(batch):
                raise ModelFailed(f"model returned {len(outputs)} outputs for a batch of {len(batch)}")
        except BadRequest as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            # One malformed request must not fail the others merged with it: answer each alone.
            for pending in batch:
                await self._settle([pending])
        except RequestError as exc:
            self._fail(batch, exc)
        except Exception as exc:
            log.exception("model predict failed")
            self._fail(batch, ModelFailed(f"model failed: {type(exc).__name__}: {exc}"))
        else:
            for pending, output in zip(batch, outputs, strict=True):
                self._answer(pending, output)

    def _fail(self, batch: list[_Pending], exc: RequestError) -> None:
        for pending in batch:
            self._answer(pending, exc)
