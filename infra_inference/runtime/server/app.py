"""The HTTP routes: OIP v2 (with generate), KServe v1, OpenAI-compatible completions and ops endpoints.

No framework on purpose: the inference route is the hot path, and a dict
lookup plus two string tests route it faster than any router. The wire
protocol is ``http1``; this module only maps a request to an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from importlib.metadata import version
from typing import Any, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST

from infra_inference.runtime.server import codec, generate
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.errors import ModelFailed, ModelNotFound, RequestError
from infra_inference.runtime.transport.http1 import Reply, Request, Response, error
from infra_inference.runtime.server.model import InferRequest, Tensors

log = logging.getLogger(__name__)

_PROMETHEUS = b"content-type: " + CONTENT_TYPE_LATEST.encode() + b"\r\n"


# Bodies larger than this are decoded, and their answers encoded, on a codec thread: a 64 MiB
# body takes the best part of a second to decode, longer than the 1 s readiness probe waits,
# and the event loop answers probes (the thread still shares the GIL, which Python hands
# back to the loop every 5 ms). 256 KiB decodes in ~3 ms, cheaper than the trip to a thread.
OFF_LOOP_BYTES = 256 * 2**10


class _Protocol(NamedTuple):
    decode: Callable[[bytes], InferRequest]
    encode: Callable[[str, InferRequest, Tensors], bytes]


def _encode_v1(name: str, request: InferRequest, outputs: Tensors) -> bytes:
    return codec.encode_v1(outputs)


def _json(status: int, doc: Any) -> Response:
    return Response(status, codec.encode_json(doc))


_error = generate.request_error


class ServerApp:
    """The routes of one ``DataPlane``, as ``http1`` calls them.

    Args:
        dataplane: The model, its admission control and metrics.
    """

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        limits = codec.TensorLimits(dataplane.settings.max_tensor_elements, dataplane.settings.max_tensor_chars)
        self._v2 = _Protocol(partial(codec.decode_v2, limits=limits), codec.encode_v2)
        self._v1 = _Protocol(partial(codec.decode_v1, limits=limits), _encode_v1)
        # One thread: large bodies are decoded one at a time, so their peak memory does not add up.
        self._codec_thread = ThreadPoolExecutor(1, thread_name_prefix="codec")
        self._get: dict[str, Callable[[], Response]] = {
            "/healthz": self._live,
            "/v2/health/live": self._live,
            "/readyz": self._ready,
            "/startupz": self._startup,
            "/v2/health/ready": self._ready,
            "/metrics": self._metrics,
            "/v2": self._server_metadata,
            "/v1/models": lambda: generate.models_list(self.dataplane.model_name),
        }
        self._generate_routes = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}

    def respond(self, request: Request, reply: Reply) -> Response | None:
        """The answer to one request, or None when it comes later through ``reply`` (inference)."""
        method, path, body = request.method, request.path, request.body
        if method == b"POST":
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                return self._infer(self._v2, path[len("/v2/models/") : -len("/infer")], body, reply)
            if path.startswith("/v1/models/") and path.endswith(":predict"):
                return self._infer(self._v1, path[len("/v1/models/") : -len(":predict")], body, reply)
            route = self._generate_routes.get(path)
            if route is not None:
                return self._generate(route, self.dataplane.model_name, body, reply)
            if path.startswith("/v2/models/"):
                name, _, route = path[len("/v2/models/") :].rpartition("/")
                if route in ("generate", "generate_stream"):
                    return self._generate(route, name, body, reply)
            return error(404, f"no POST route {path}")
        if method in (b"GET", b"HEAD"):
            return self._route_get(path)
        return error(405, f"method {method.decode('latin-1')} not allowed")

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
        return error(404, f"no GET route {path}")

    def _infer(self, protocol: _Protocol, name: str, body: bytes, reply: Reply) -> Response | None:
        start = time.perf_counter()
        if len(body) > OFF_LOOP_BYTES:
            decoding = self._codec_thread.submit(protocol.decode, body)
            loop = asyncio.get_running_loop()
            decoding.add_done_callback(
                lambda done: loop.call_soon_threadsafe(self._decoded, protocol, name, done, reply, start))
            return None
        try:
            request = protocol.decode(body)
        except RequestError as exc:
            return self._failed(exc, start)
        return self._submit(protocol, name, request, reply, start, off_loop=False)

    def _decoded(self, protocol: _Protocol, name: str, decoding: Future[InferRequest], reply: Reply,
                 start: float) -> None:
        try:
            request = decoding.result()
        except RequestError as exc:
            reply(self._failed(exc, start))
            return
        except Exception:  # a decoder bug must still answer, or the connection waits forever
            log.exception("decoding a request failed")
            reply(self._failed(ModelFailed("internal server error"), start))
            return
        response = self._submit(protocol, name, request, reply, start, off_loop=True)
        if response is not None:
            reply(response)

    def _submit(self, protocol: _Protocol, name: str, request: InferRequest, reply: Reply, start: float,
                off_loop: bool) -> Response | None:
        def answered(outcome: Tensors | RequestError) -> None:
            if isinstance(outcome, RequestError):
                response = _error(outcome)
            elif off_loop:  # a large request's answer is most likely large too
                encoding = self._codec_thread.submit(self._encode, protocol, request, outcome)
                loop = asyncio.get_running_loop()
                encoding.add_done_callback(
                    lambda done: loop.call_soon_threadsafe(self._send, reply, start, done.result()))
                return
            else:
                response = self._encode(protocol, request, outcome)
            self._send(reply, start, response)

        try:
            self.dataplane.submit(name, request, answered)
        except RequestError as exc:
            return self._failed(exc, start)
        return None

    def _generate(self, route: str, name: str, body: bytes, reply: Reply) -> Response | None:
        start = time.perf_counter()
        metrics = self.dataplane.metrics

        def done(status: int) -> None:
            metrics.observe_request(status, time.perf_counter() - start)

        try:
            job = generate.parse(route, name, self.dataplane.model_name, body)
            self.dataplane.submit(name, job.request, generate.Generation(job, reply, done).answered)
        except RequestError as exc:
            done(exc.status)
            return generate.openai_error(exc) if generate.is_openai(route) else _error(exc)
        return None

    def _encode(self, protocol: _Protocol, request: InferRequest, outputs: Tensors) -> Response:
        try:
            return Response(200, protocol.encode(self.dataplane.model_name, request, outputs))
        except RequestError as exc:
            return _error(exc)
        except Exception:  # a bug here must still answer, or the connection waits forever
            log.exception("encoding the answer failed")
            return error(500, "internal server error")

    def _send(self, reply: Reply, start: float, response: Response) -> None:
        self.dataplane.metrics.observe_request(response.status, time.perf_counter() - start)
        reply(response)

    def _failed(self, exc: RequestError, start: float) -> Response:
        response = _error(exc)
        self.dataplane.metrics.observe_request(response.status, time.perf_counter() - start)
        return response

    def close(self) -> None:
        """Release the codec and predict threads (after the last request)."""
        self._codec_thread.shutdown(wait=False)
        self.dataplane.close()

    def _live(self) -> Response:
        return _json(200 if self.dataplane.live() else 503, {"live": self.dataplane.live()})

    def _startup(self) -> Response:
        loaded = self.dataplane.loaded()
        return _json(200 if loaded else 503, {"loaded": loaded})

    def _ready(self) -> Response:
        ready = self.dataplane.ready()
        return _json(200 if ready else 503, {"ready": ready})

    def _metrics(self) -> Response:
        return Response(200, self.dataplane.metrics.render(), _PROMETHEUS)

    def _server_metadata(self) -> Response:
        return _json(200, {"name": "infra-inference", "version": version("infra-inference"), "extensions": []})
