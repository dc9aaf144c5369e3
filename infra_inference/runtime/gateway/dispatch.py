"""The request queue: one FIFO per backend, dispatched to the least-outstanding replica with a free slot.

A replica gets at most `max_concurrency` requests from this gateway; the
rest wait here, where any replica that frees a slot (or starts) can take
them, instead of in one replica's queue behind its slowest request. With
3 replicas of 4 slots, the 13th concurrent request waits here, and the first
slot freed anywhere takes it.

Time comes in as `now` from the caller's monotonic clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from infra_inference.wire.gateway import BackendConfig

# A replica that refused a connection or said it is draining sits out this
# long: the replacement or the EndpointSlice update arrives meanwhile
# (the local actuator notices a dead process within 0.1 s; Kubernetes marks
# endpoints not ready within a readiness period, 2 s in our manifests).
EJECT_S = 5.0


@dataclass(eq=False)
class Replica:
    address: str
    outstanding: int = 0
    ejected_until: float = 0.0


@dataclass(eq=False)
class Backend:
    config: BackendConfig
    replicas: dict[str, Replica] = field(default_factory=dict)
    queue: deque[asyncio.Future[Replica]] = field(default_factory=deque)

    @property
    def inflight(self) -> int:
        return sum(r.outstanding for r in self.replicas.values())

    def ready(self, now: float) -> int:
        return sum(1 for r in self.replicas.values() if r.ejected_until <= now)

    def free_replica(self, now: float) -> Replica | None:
        """The ready replica with the fewest outstanding requests, if any has a free slot."""
        best: Replica | None = None
        limit = self.config.max_concurrency
        for r in self.replicas.values():
            if r.outstanding < limit and r.ejected_until <= now and (best is None or r.outstanding < best.outstanding):
                best = r
        return best


class QueueFull(Exception):
    """The gateway queue holds `max_queue` requests already."""


class Dispatcher:
    """Backends, their queues, and the rule that hands a free slot to the oldest waiting request.

    Args:
        backends: From the gateway config; fallback backends serve only overflow.
        max_queue: Requests waiting across all backends.
        clock: Monotonic seconds.
        on_wait_for_replicas: Called when a request queues behind a backend with no ready
            replica (the activator's poke).
    """

    def __init__(self, backends: Iterable[BackendConfig], max_queue: int, clock: Callable[[], float],
                 on_wait_for_replicas: Callable[[Backend], None] = lambda b: None) -> None:
        self.backends = {b.deployment: Backend(b) for b in backends}
        self._fallbacks = [b for b in self.backends.values() if b.config.fallback]
        self._max_queue = max_queue
        self._clock = clock
        self._poke = on_wait_for_replicas
        self.queued = 0

    def set_replicas(self, deployment: str, addresses: Iterable[str]) -> None:
        """Replace the replica set of a backend (from discovery); outstanding counts carry over."""
        backend = self.backends[deployment]
        old = backend.replicas
        backend.replicas = {a: old.get(a) or Replica(a) for a in addresses}
        self.pump()

    def eject(self, replica: Replica) -> None:
        replica.ejected_until = self._clock() + EJECT_S
        # When the ejection ends nothing else may come to hand its slots on (no arrival, no release): the
        # requests queued meanwhile would wait out their timeout for a replica that is back.
        asyncio.get_running_loop().call_later(EJECT_S, self.pump)

    def try_acquire(self, backend: Backend) -> Replica | None:
        """A slot right now, without queueing; only when nobody is waiting ahead."""
        if backend.queue:
            return None
        replica = self._free_slot(backend, self._clock())
        if replica is not None:
            replica.outstanding += 1
        return replica

    async def acquire(self, backend: Backend, timeout_s: float, front: bool = False) -> Replica:
        """Wait in the backend's queue (at the front for a retry) for a free slot.

        Raises:
            QueueFull: The queue is at `max_queue` (a retry is never refused: it was accepted before).
            TimeoutError: No slot within `timeout_s`.
        """
        if not front and self.queued >= self._max_queue:
            raise QueueFull
        waiter: asyncio.Future[Replica] = asyncio.get_running_loop().create_future()
        (backend.queue.appendleft if front else backend.queue.append)(waiter)
        self.queued += 1
        if backend.ready(self._clock()) == 0:
            self._poke(backend)
        self.pump()
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # a slot came just as the caller gave up: hand it on
            else:
                self._forget(backend, waiter)
            raise

    def release(self, replica: Replica) -> None:
        replica.outstanding -= 1
        self.pump()

    def pump(self) -> None:
        """Hand free slots to waiting requests, oldest first within each backend."""
        now = self._clock()
        for backend in self.backends.values():
            while backend.queue:
                waiter = backend.queue[0]
                if waiter.done():  # timed out or cancelled while waiting
                    backend.queue.popleft()
                    self.queued -= 1
                    continue
                replica = self._free_slot(backend, now)
                if replica is None:
                    break
                backend.queue.popleft()
                self.queued -= 1
                replica.outstanding += 1
                waiter.set_result(replica)

    def _free_slot(self, backend: Backend, now: float) -> Replica | None:
        replica = backend.free_replica(now)
        if replica is None and not backend.config.fallback:
            for fallback in self._fallbacks:
                replica = fallback.free_replica(now)
                if replica is not None:
                    break
        return replica

    def _forget(self, backend: Backend, waiter: asyncio.Future[Replica]) -> None:
        try:
            backend.queue.remove(waiter)
            self.queued -= 1
        except ValueError:
            pass  # pump() already dropped it
