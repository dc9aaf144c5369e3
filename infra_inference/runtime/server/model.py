"""The model protocol: what a user class implements, and how a `--model` value becomes one."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from infra_inference.runtime.server.loading.filling import FillingFile
from infra_inference.runtime.server.settings import ServerSettings

Tensors = dict[str, np.ndarray]
"""Named tensors: one request's inputs, or one request's outputs."""


class InvalidInput(ValueError):
    """Raised by a model for input it cannot serve; the client gets a 400 with this message."""


@runtime_checkable
class TokenSink(Protocol):
    """Where a generative model puts each token as it makes it (the server streams them to the client).

    ``cancelled`` turns true when nobody reads the tokens any more (the client
    went away): the model should stop generating and return what it has.
    """

    cancelled: bool

    def emit(self, token: str) -> None: ...


@dataclass(slots=True)
class InferRequest:
    """One decoded request, as the model sees it inside a batch.

    Attributes:
        inputs: Named input tensors, shapes and dtypes already checked against the request.
        parameters: The request's free-form ``parameters`` object (empty for KServe v1).
        id: The client's request id, echoed back in the response.
        tokens: For a streamed generation, where the model emits each token; None otherwise.
    """

    inputs: Tensors
    parameters: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    tokens: TokenSink | None = None


@dataclass(frozen=True, slots=True)
class ModelContext:
    """What a model is constructed with.

    Attributes:
        name: The name the model is served under.
        path: Local file or directory of the fetched weights (in the node cache), or None. While
            ``weights`` is set, the file appears there only once the download is complete.
        settings: The server's full configuration.
        phases: Where loaders record cold-start seconds by phase ("read",
            "to_device"); the server exports them as metrics.
        weights: The weights as they download, for a model class with ``streams_weights = True``
            (read them through `loading.safetensors`, or wait with its ``wait_for``); None when the
            file at ``path`` is complete already (a cache hit, a local path) or the model does not stream.
    """

    name: str
    path: Path | None
    settings: ServerSettings
    phases: dict[str, float] = field(default_factory=dict)
    weights: FillingFile | None = None


@runtime_checkable
class Model(Protocol):
    """A servable model: ``load()`` once, then ``predict(batch)`` many times.

    ``predict`` gets a list of requests (one unless dynamic batching merged
    several) and returns one ``Tensors`` per request, in order. It may be a
    plain function, which runs on a worker thread so the event loop keeps
    admitting requests, or a coroutine function, which runs on the loop (the
    right choice when the work is awaited elsewhere, e.g. a GPU stream or a
    remote engine). A model may also define ``ready() -> bool``; the server is
    ready only while it returns true.

    A model class that sets ``streams_weights = True`` is constructed as soon
    as a download starts, with ``context.weights`` filling, and its ``load()``
    runs while the bytes arrive; the server is ready only once ``load()`` has
    returned and the download is complete and verified. Any other model is
    constructed once the file is complete in the node cache.
    """

    def load(self) -> None: ...

    def predict(self, batch: Sequence[InferRequest]) -> Sequence[Tensors] | Awaitable[Sequence[Tensors]]: ...


ModelFactory = Callable[[ModelContext], Model]


def _builtin(name: str) -> ModelFactory | None:
    # Imported lazily so `--model pkg:Class` never pays for (or needs) the built-ins' imports.
    if name == "echo":
        from infra_inference.runtime.server.models.echo import EchoModel

        return EchoModel
    if name == "safetensors-mlp":
        from infra_inference.runtime.server.models.mlp import SafetensorsMLP

        return SafetensorsMLP
    if name == "tiny-lm":
        from infra_inference.runtime.server.models.tiny_lm import TinyLM

        return TinyLM
    return None


def resolve_model(spec: str) -> ModelFactory:
    """Turn a ``--model`` value into a factory.

    Args:
        spec: ``echo``, ``safetensors-mlp``, ``tiny-lm`` or ``package.module:Class``.

    Returns:
        A callable taking a ``ModelContext`` and returning the (unloaded) model.

    Raises:
        ValueError: When the spec names nothing importable.
    """
    builtin = _builtin(spec)
    if builtin is not None:
        return builtin
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"model {spec!r}: expected 'echo', 'safetensors-mlp', 'tiny-lm' or 'package.module:Class'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model {spec!r}: cannot import it ({exc})") from exc
    if not callable(factory):
        raise ValueError(f"model {spec!r}: {attr} is not a class or factory")
    return factory
