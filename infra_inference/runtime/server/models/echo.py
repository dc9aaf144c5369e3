"""`echo`: returns its inputs; optionally costs time like a GPU batch would."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from infra_inference.runtime.server.model import InferRequest, ModelContext, Tensors


class EchoModel:
    """Answers each request with its own inputs.

    A batch of ``n`` requests takes ``echo_delay_ms + n * echo_delay_per_item_ms``
    (the ``a + b * n`` cost of a GPU forward pass), and at least the largest
    ``delay_ms`` request parameter in the batch, which is capped at twice the
    server's ``timeout_s``: a longer one could only end in a 504 (the deadline
    answers it and recalls the sleep), and a cap at the timeout itself would end
    the sleep at the deadline's instant, racing its timer for a 200. The wait is an ``asyncio``
    sleep, so like a GPU kernel it holds a concurrency slot but not the CPU.
    With both costs at 0 it answers inline: the server's own overhead, measured.
    """

    def __init__(self, context: ModelContext) -> None:
        self._base_s = context.settings.echo_delay_ms / 1000.0
        self._per_item_s = context.settings.echo_delay_per_item_ms / 1000.0
        self._max_asked_ms = 2 * context.settings.timeout_s * 1000.0

    def load(self) -> None:
        pass

    def delay_s(self, batch: Sequence[InferRequest]) -> float:
        """Seconds this batch takes under the cost model."""
        asked_ms = 0.0
        for r in batch:
            if r.parameters:  # most requests carry none: skip the lookups (echo measures server overhead)
                asked_ms = max(asked_ms, min(_delay_ms(r), self._max_asked_ms))
        return max(self._base_s + self._per_item_s * len(batch), asked_ms / 1000.0)

    async def predict(self, batch: Sequence[InferRequest]) -> list[Tensors]:
        delay = self.delay_s(batch)
        if delay > 0.0:
            await asyncio.sleep(delay)
        return [r.inputs for r in batch]


def _delay_ms(request: InferRequest) -> float:
    value = request.parameters.get("delay_ms", 0.0)
    # A bad value is the client's mistake; ignore it rather than fail the whole batch.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0
