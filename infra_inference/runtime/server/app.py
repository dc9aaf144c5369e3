"""The HTTP adapter: a plain ASGI app routing OIP v2, KServe v1 and ops endpoints to the data plane.

No framework on purpose: the inference route is the hot path, and a dict
lookup plus two string tests route it faster than any router.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST

from infra_inference.runtime.server import codec
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.errors import BadRequest, ModelNotFound, PayloadTooLarge, RequestError
from infra_inference.runtime.server.model import InferRequest, Tensors

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Response = tuple[int, bytes, Headers]

_JSON: Headers = [(b"content-type", b"application/json")]
_PROMETHEUS: Headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]


class _Protocol(NamedTuple):
    decode: Callable[[bytes], InferRequest]
    encode: Callable[[str, InferRequest, Tensors], bytes]


_V2 = _Protocol(codec.decode_v2, codec.encode_v2)
_V1 = _Protocol(codec.decode_v1, lambda name, request, outputs: codec.encode_v1(outputs))


def _json(status: int, doc: Any) -> Response:
    return status, codec.encode_json(doc), _JSON


def _error(exc: RequestError) -> Response:
    return exc.status, codec.encode_json({"error": exc.message}), _JSON + list(exc.headers)


class ServerApp:
    """ASGI application serving one ``DataPlane``.

    It loads the model on ASGI lifespan startup, in the background, so that
    ``/healthz`` answers while a large model is still loading.

    Args:
        dataplane: The model, its admission control and metrics.
        on_load_failure: Called when the model cannot load (the server should exit non-zero).
    """

    def __init__(self, dataplane: DataPlane, on_load_failure: Callable[[], None] = lambda: None) -> None:
        self.dataplane = dataplane
        self._on_load_failure = on_load_failure
        self._max_request_bytes = dataplane.settings.max_request_bytes
        self._open = 0
        self._quiet = asyncio.Event()
        self._loading: asyncio.Task[None] | None = None
        self._get: dict[str, Callable[[], Response]] = {
            "/healthz": self._live,
            "/v2/health/live": self._live,
            "/readyz": self._ready,
            "/v2/health/ready": self._ready,
            "/metrics": self._metrics,
            "/v2": self._server_metadata,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def wait_quiet(self) -> None:
        """Return once no inference request is open (every accepted one has been answered)."""
        while self._open:
            self._quiet.clear()
            await self._quiet.wait()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        if method == "POST":
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                await self._infer(_V2, path[len("/v2/models/") : -len("/infer")], receive, send)
                return
            if path.startswith("/v1/models/") and path.endswith(":predict"):
                await self._infer(_V1, path[len("/v1/models/") : -len(":predict")], receive, send)
                return
            response = _json(404, {"error": f"no POST route {path}"})
        elif method in ("GET", "HEAD"):
            response = self._route_get(path)
        else:
            response = _json(405, {"error": f"method {method} not allowed"})
        await _send(send, *response)

    def _route_get(self, path: str) -> Response:
        handler = self._get.get(path)
        if handler is not None:
            return handler()
        if path.startswith("/v2/models/"):
            name, _, rest = path[len("/v2/models/") :].partition("/")
            try:
                if rest == "ready":
                    ready = self.dataplane.model_ready(name)
                    return _json(200 if ready else 503, {"name": name, "ready": ready})
                if rest == "":
                    return _json(200, self.dataplane.model_metadata(name))
            except ModelNotFound as exc:
                return _error(exc)
        return _json(404, {"error": f"no GET route {path}"})

    async def _infer(self, protocol: _Protocol, name: str, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        self._open += 1
        try:
            try:
                request = protocol.decode(await self._read_body(receive))
                outputs = await self.dataplane.infer(name, request)
                response: Response = (200, protocol.encode(self.dataplane.model_name, request, outputs), _JSON)
            except RequestError as exc:
                response = _error(exc)
            self.dataplane.metrics.observe_request(response[0], time.perf_counter() - start)
            await _send(send, *response)
        finally:
            self._open -= 1
            if not self._open:
                self._quiet.set()

    async def _read_body(self, receive: Receive) -> bytes:
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False) and len(body) <= self._max_request_bytes:
            return body  # the common case: the whole body in one message
        chunks = [body]
        size = len(body)
        while True:
            if size > self._max_request_bytes:
                raise PayloadTooLarge(f"request body exceeds max_request_bytes={self._max_request_bytes}")
            if not message.get("more_body", False):
                return b"".join(chunks)
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected before sending the whole body")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)

    def _live(self) -> Response:
        return _json(200 if self.dataplane.live() else 503, {"live": self.dataplane.live()})

    def _ready(self) -> Response:
        ready = self.dataplane.ready()
        return _json(200 if ready else 503, {"ready": ready})

    def _metrics(self) -> Response:
        return 200, self.dataplane.metrics.render(), _PROMETHEUS

    def _server_metadata(self) -> Response:
        return _json(200, {"name": "infra-inference", "version": version("infra-inference"), "extensions": []})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loading = asyncio.create_task(self._load())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._loading is not None:
                    self._loading.cancel()
                self.dataplane.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        try:
            await self.dataplane.load()
        except Exception:
            log.exception("model %s failed to load", self.dataplane.model_name)
            self._on_load_failure()


async def _send(send: Send, status: int, body: bytes, headers: Headers) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
