"""A user model class, loaded by `--model tests.runtime.server.user_model:Doubler`."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from infra_inference.runtime.server import InferRequest, ModelContext, Tensors


class Doubler:
    """Doubles every input; a plain (sync) predict, so it runs on the server's worker threads."""

    def __init__(self, context: ModelContext) -> None:
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def ready(self) -> bool:
        return self.loaded

    def predict(self, batch: Sequence[InferRequest]) -> list[Tensors]:
        return [{name: value * 2 for name, value in r.inputs.items()} for r in batch]


RELEASE = threading.Event()
LOAD = threading.Event()


class Wedged:
    """A sync predict that does not return until the test sets ``RELEASE`` (a hung CUDA call, say)."""

    def __init__(self, context: ModelContext) -> None:
        pass

    def load(self) -> None:
        pass

    def predict(self, batch: Sequence[InferRequest]) -> list[Tensors]:
        RELEASE.wait(timeout=60)
        return [r.inputs for r in batch]


class SlowLoad(Doubler):
    """Loads only once the test sets ``LOAD``."""

    def load(self) -> None:
        LOAD.wait(timeout=60)
        super().load()


class FileSize:
    """Reads ``context.path`` in its constructor, as a class written before weights could stream would."""

    def __init__(self, context: ModelContext) -> None:
        assert context.path is not None
        self.size = context.path.stat().st_size

    def load(self) -> None:
        pass

    def predict(self, batch: Sequence[InferRequest]) -> list[Tensors]:
        return [{"size": np.array([self.size])} for _ in batch]
