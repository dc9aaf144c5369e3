"""The transport-agnostic data plane: model lifecycle, health, metadata and inference.

HTTP (``app.py``) is a thin adapter over this class; another transport (gRPC)
would be another adapter over the same methods.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from infra_inference.runtime.server.errors import BadRequest, Draining, ModelNotFound
from infra_inference.runtime.server.gpu_memory_cap import cap_gpu_memory
from infra_inference.runtime.server.loading.cache import ModelSource, open_model
from infra_inference.runtime.server.loading.sources import Credentials
from infra_inference.runtime.server.metrics import ServerMetrics
from infra_inference.runtime.server.model import InferRequest, InvalidInput, Model, ModelContext, Tensors, resolve_model
from infra_inference.runtime.server.scheduler import Predict, Reply, Scheduler
from infra_inference.runtime.server.settings import ServerSettings

log = logging.getLogger(__name__)


class DataPlane:
    """One served model behind admission control, with its metrics.

    Args:
        settings: Server configuration.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.model_name = settings.served_name
        self._factory = resolve_model(settings.model)
        self._model: Model | None = None
        # Its node-cache entry, pinned while this replica serves: never evicted under a live replica.
        self._weights: ModelSource | None = None
        # Sync predict() runs here; one thread per slot, since a batch never holds fewer than one.
        self._executor = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="predict")
        self.scheduler = Scheduler(
            self._predict,
            max_concurrency=settings.max_concurrency,
            max_queue=settings.max_queue,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            timeout_s=settings.timeout_s,
            retry_after_s=settings.retry_after_s,
            on_batch=self._observe_batch,
        )
        self.metrics = ServerMetrics(lambda: self.scheduler.inflight, lambda: self.scheduler.queue_depth,
                                     settings.service)
        self._run_predict: Predict | None = None

    async def load(self) -> None:
        """Fetch the weights (through the node cache), construct and load the model.

        A model that streams its weights loads while they download; the model
        is served only once the download is complete and verified as well.

        Raises:
            Exception: Whatever fetching or the model's ``load()`` raised; the server cannot serve.
        """
        start = time.perf_counter()
        phases: dict[str, float] = {}
        source = None
        if self.settings.model_uri:
            source = await asyncio.to_thread(open_model, self.settings.model_uri, self.settings.cache_dir,
                                             Credentials(self.settings.model_credentials_dir),
                                             stall_timeout_s=self.settings.model_stall_timeout_s,
                                             max_bytes=self.settings.model_cache_max_bytes)
        opened_s = time.perf_counter() - start
        try:
            weights = None
            if source is not None:
                if self.settings.stream_weights and getattr(self._factory, "streams_weights", False):
                    weights = source.weights
                else:
                    await asyncio.to_thread(source.cached)
            await asyncio.to_thread(cap_gpu_memory, self.settings.gpu_memory_fraction)
            context = ModelContext(self.model_name, source.path if source else None, self.settings, phases, weights)
            model = self._factory(context)
            await asyncio.to_thread(model.load)
            if weights is not None:
                await asyncio.to_thread(weights.wait_finished)  # never serve bytes a check would reject
        except BaseException:
            if source is not None:
                source.unpin()
            raise
        finally:
            if source is not None:
                source.close()  # the commit to the cache continues; an unfinished download stops
        if source is not None:
            # A download's seconds (overlapping "read" when streamed), or a hit's check (a pin's hash).
            phases["fetch"] = source.fetch_s if source.fetch_s is not None else opened_s
        phases["total"] = time.perf_counter() - start
        self.metrics.set_load_phases(phases)
        self._run_predict = self._bind_predict(model)
        self._model = model
        self._weights = source
        log.info("model %s loaded in %.2fs (%s)", self.model_name, phases["total"], phases)

    def _bind_predict(self, model: Model) -> Predict:
        if inspect.iscoroutinefunction(model.predict):
            return model.predict  # type: ignore[return-value]
        loop = asyncio.get_running_loop()

        async def on_thread(batch: list[InferRequest]) -> Sequence[Tensors]:
            work = loop.run_in_executor(self._executor, model.predict, batch)
            try:
                return await asyncio.shield(work)  # type: ignore[no-any-return]
            except asyncio.CancelledError:
                # Recalled after its deadline, but a thread cannot be stopped: its slot stays
                # taken until it returns, so the concurrency limit holds for real work.
                await asyncio.wait([work])
                raise

        return on_thread

    async def _predict(self, batch: list[InferRequest]) -> Sequence[Tensors]:
        assert self._run_predict is not None  # infer() admits nothing before load() finished
        try:
            return await self._run_predict(batch)
        except InvalidInput as exc:
            raise BadRequest(str(exc)) from None

    def _observe_batch(self, size: int) -> None:
        self.metrics.observe_batch(size)

    def live(self) -> bool:
        """False once a batch has held its slots ``timeout_s`` past its last request's deadline.

        Such a predict ignored its recall (a call on a thread cannot be stopped), and holds
        the slot now for nobody: only a restart gives it back. A wait as long as the timeout
        itself tells a wedged call from a slow one.
        """
        since = self.scheduler.overdue_since
        return since is None or asyncio.get_running_loop().time() - since < self.settings.timeout_s

    def loaded(self) -> bool:
        """The model has loaded (what the startup probe waits for; draining does not change it)."""
        return self._model is not None

    def ready(self) -> bool:
        """Loaded, accepting, a slot not held past its deadline, and the model itself (if it says) ready."""
        model = self._model
        if model is None or not self.scheduler.accepting:
            return False
        if self.scheduler.overdue_slots >= self.settings.max_concurrency:
            return False  # every slot is held by a call nobody waits for: nothing could be served
        model_ready = getattr(model, "ready", None)
        return bool(model_ready()) if callable(model_ready) else True

    def model_metadata(self, name: str) -> dict[str, Any]:
        """OIP model metadata.

        Raises:
            ModelNotFound: ``name`` is not the served model.
        """
        self._check_name(name)
        return {"name": self.model_name, "platform": self.settings.model, "versions": [], "inputs": [], "outputs": []}

    def model_ready(self, name: str) -> bool:
        """Whether the named model is ready. Raises ``ModelNotFound`` for another name."""
        self._check_name(name)
        return self.ready()

    def start_drain(self) -> None:
        """Refuse new requests (503) and report unready; accepted ones still complete."""
        self.scheduler.close()

    def submit(self, name: str, request: InferRequest, reply: Reply) -> None:
        """Admit one request; ``reply`` gets its outputs or its ``RequestError`` later, exactly once.

        The transport's hot path: no coroutine or task of its own per request.

        Raises:
            ModelNotFound: Unknown model name.
            Draining: Not loaded yet, or shutting down.
            QueueFull: Overloaded; retry later or elsewhere.
        """
        self._check_admissible(name)
        self.scheduler.enqueue(request, reply)

    async def infer(self, name: str, request: InferRequest) -> Tensors:
        """Run one request through admission, batching and the model.

        Raises:
            ModelNotFound: Unknown model name.
            Draining: Not loaded yet, or shutting down.
            QueueFull: Overloaded; retry later or elsewhere.
            Timeout: Accepted, but no answer within ``timeout_s``.
            RequestError: The model rejected the input or failed.
        """
        self._check_admissible(name)
        return await self.scheduler.submit(request)

    def _check_admissible(self, name: str) -> None:
        self._check_name(name)
        if self._model is None:
            raise Draining(f"model {name!r} is still loading")

    def _check_name(self, name: str) -> None:
        if name != self.model_name:
            raise ModelNotFound(f"model {name!r} is not served here; this server serves {self.model_name!r}")

    def close(self) -> None:
        """Release the predict threads (after the last request) and the cache entry's pin."""
        self._executor.shutdown(wait=False, cancel_futures=False)
        if self._weights is not None:
            self._weights.unpin()
