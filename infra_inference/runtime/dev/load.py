"""Generated load for the demo: closed-loop clients against the gateway, in phases.

A phase is (seconds, clients): each client sends a request, waits for the
answer and sends the next, so concurrency is the client count (Little's law
again: 24 clients with 50 ms answers are 480 req/s at 24 in flight).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

Phase = tuple[float, int]
# Idle, a trickle (one replica), a burst (several), then idle until back at zero.
DEMO_PHASES: tuple[Phase, ...] = ((2.0, 0), (6.0, 3), (8.0, 24), (0.0, 0))


@dataclass
class LoadResult:
    codes: Counter[int] = field(default_factory=Counter)
    first_sent: float | None = None
    first_answer_s: float | None = None
    last_answer_at: float = 0.0

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code != 200)


async def run_phases(url: str, model: str, phases: tuple[Phase, ...], result: LoadResult) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def client(until: float) -> None:
            while time.monotonic() < until:
                if result.first_sent is None:
                    result.first_sent = time.monotonic()
                try:
                    async with session.post(f"{url}/v2/models/{model}/infer", data=body,
                                            headers={"content-type": "application/json"}) as r:
                        await r.read()
                        code = r.status
                except aiohttp.ClientError:
                    code = 599  # no answer at all: counted as a failure
                result.codes[code] += 1
                result.last_answer_at = time.time()
                if result.first_answer_s is None:
                    result.first_answer_s = time.monotonic() - result.first_sent

        for seconds, clients in phases:
            until = time.monotonic() + seconds
            if clients:
                await asyncio.gather(*(client(until) for _ in range(clients)))
            else:
                await asyncio.sleep(seconds)
