"""The HTTP routes: OIP v2 (with generate), KServe v1, OpenAI-compatible completions and ops endpoints.

No framework on purpose: the inference route is the hot path, and a dict
lookup plus two string tests route it faster than any router. The wire
protocol is ``http1``; this module only maps a request to an answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST

from infra_inference.runtime.server import codec, generate
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.errors import ModelNotFound, RequestError
from infra_inference.runtime.transport.http1 import Reply, Request, Response, error
from infra_inference.runtime.server.model import InferRequest, Tensors

log = logging.getLogger(__name__)

_PROMETHEUS = b"content-type: " + CONTENT_TYPE_LATEST.encode() + b"\r\n"


class _Protocol(NamedTuple):
    decode: Callable[[bytes], InferRequest]
    encode: Callable[[str, InferRequest, Tensors], bytes]


_V2 = _Protocol(codec.decode_v2, codec.encode_v2)
_V1 = _Protocol(codec.decode_v1, lambda name, request, outputs: codec.encode_v1(outputs))


def _json(status: int, doc: Any) -> Response:
    return Response(status, codec.encode_json(doc))


def _error(exc: RequestError) -> Response:
    response = error(exc.status, exc.message)
    if not exc.headers:
        return response
    return response._replace(headers=response.headers + b"".join(k + b": " + v + b"\r\n" for k, v in exc.headers))


class ServerApp:
    """The routes of one ``DataPlane``, as ``http1`` calls them.

    Args:
        dataplane: The model, its admission control and metrics.
    """

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self._get: dict[str, Callable[[], Response]] = {
            "/healthz": self._live,
            "/v2/health/live": self._live,
            "/readyz": self._ready,
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
                return self._infer(_V2, path[len("/v2/models/") : -len("/infer")], body, reply)
            if path.startswith("/v1/models/") and path.endswith(":predict"):
                return self._infer(_V1, path[len("/v1/models/") : -len(":predict")], body, reply)
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
        metrics = self.dataplane.metrics
        try:
            request = protocol.decode(body)

            def answered(outcome: Tensors | RequestError) -> None:
                if isinstance(outcome, RequestError):
                    response = _error(outcome)
                else:
                    try:
                        response = Response(200, protocol.encode(self.dataplane.model_name, request, outcome))
                    except RequestError as exc:
                        response = _error(exc)
                    except Exception:  # a bug here must still answer, or the connection waits forever
                        log.exception("encoding the answer failed")
                        response = error(500, "internal server error")
                metrics.observe_request(response.status, time.perf_counter() - start)
                reply(response)

            self.dataplane.submit(name, request, answered)
        except RequestError as exc:
            response = _error(exc)
            metrics.observe_request(response.status, time.perf_counter() - start)
            return response
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

    def _live(self) -> Response:
        return _json(200 if self.dataplane.live() else 503, {"live": self.dataplane.live()})

    def _ready(self) -> Response:
        ready = self.dataplane.ready()
        return _json(200 if ready else 503, {"ready": ready})

    def _metrics(self) -> Response:
        return Response(200, self.dataplane.metrics.render(), _PROMETHEUS)

    def _server_metadata(self) -> Response:
        return _json(200, {"name": "infra-inference", "version": version("infra-inference"), "extensions": []})
