"""Text generation over HTTP: OIP's generate extension and the OpenAI-compatible completions routes.

One request of either kind becomes one `InferRequest` (the prompt as the
`text_input` tensor, `max_tokens`, `temperature`, `seed` as parameters),
admitted, queued and timed out like any other. A streamed one carries a
`TokenSink`: each token the model emits is written to the client at once as
a server-sent event, the answer's head going out with the first token; a
client that goes away sets `cancelled`, and the model stops. The routes:

- `POST /v2/models/{name}/generate` -> `{"model_name", "text_output"}` (Triton's generate extension);
- `POST /v2/models/{name}/generate_stream` -> one `data: {"model_name", "text_output"}` event per token;
- `POST /v1/completions`, `POST /v1/chat/completions` with `stream` false or true
  (chunks, then `data: [DONE]`; usage in a last chunk when `stream_options.include_usage`);
- `GET /v1/models` -> the served model.

An error after the stream began (the model failed, the deadline passed) is
written as an `error` event, then the stream is cut without its last chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import orjson

from infra_inference.runtime.server.errors import BadRequest, ModelNotFound, RequestError
from infra_inference.runtime.transport.http1 import JSON, Head, Reply, Response, Stream, error
from infra_inference.runtime.server.model import InferRequest, Tensors

SSE = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


class Job(NamedTuple):
    """A parsed generation request: what the model gets, and how the answer is shaped."""

    request: InferRequest
    stream: bool
    shape: Shape


class Shape:
    """How one protocol writes a generation: whole, or as events."""

    def __init__(self, model: str) -> None:
        self.model = model

    def event(self, token: str) -> bytes:
        raise NotImplementedError

    def last_events(self, outputs: Tensors) -> bytes:
        return b""

    def whole(self, outputs: Tensors) -> dict[str, Any]:
        raise NotImplementedError

    def error(self, exc: RequestError) -> Response:
        return request_error(exc)


class _Oip(Shape):
    def event(self, token: str) -> bytes:
        return _sse({"model_name": self.model, "model_version": "", "text_output": token})

    def whole(self, outputs: Tensors) -> dict[str, Any]:
        return {"model_name": self.model, "model_version": "", "text_output": _text(outputs)}


class _OpenAI(Shape):
    """Chat completions (``chat=True``) or completions, with OpenAI's ids, objects and usage."""

    def __init__(self, model: str, chat: bool, include_usage: bool) -> None:
        super().__init__(model)
        self._chat = chat
        self._include_usage = include_usage
        self._id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self._created = int(time.time())
        self._object = "chat.completion" if chat else "text_completion"
        self._first = True

    def _doc(self, obj: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self._id, "object": obj, "created": self._created, "model": self.model, "choices": choices,
                **extra}

    def _chunk(self, text: str | None, finish: str | None) -> bytes:
        if self._chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if self._first:
                delta["role"] = "assistant"
                self._first = False
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse(self._doc("chat.completion.chunk", [choice]))
        return _sse(self._doc("text_completion", [{"index": 0, "text": text or "", "logprobs": None,
                                                    "finish_reason": finish}]))

    def event(self, token: str) -> bytes:
        return self._chunk(token, None)

    def error(self, exc: RequestError) -> Response:
        return openai_error(exc)

    def last_events(self, outputs: Tensors) -> bytes:
        events = self._chunk(None, _finish(outputs))
        if self._include_usage:
            events += _sse(self._doc(self._object + (".chunk" if self._chat else ""), [], usage=_usage(outputs)))
        return events + b"data: [DONE]\n\n"

    def whole(self, outputs: Tensors) -> dict[str, Any]:
        text, finish = _text(outputs), _finish(outputs)
        if self._chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return self._doc(self._object, [choice], usage=_usage(outputs))


_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 503: "unavailable",
                504: "timeout"}


# What a generation request may ask of the model (vLLM's names); the model checks the values.
_OPTIONS = ("max_tokens", "temperature", "seed", "ignore_eos")


def request_error(exc: RequestError) -> Response:
    """An error as every route but OpenAI's words it (``{"error": message}``), with the error's headers."""
    response = error(exc.status, exc.message)
    if not exc.headers:
        return response
    return response._replace(headers=response.headers + _header_lines(exc))


def openai_error(exc: RequestError) -> Response:
    """An error as OpenAI's API words it (``{"error": {"message", "type", "code"}}``), which its clients read."""
    doc = {"error": {"message": exc.message, "type": _ERROR_TYPES.get(exc.status, "server_error"), "code": exc.status}}
    return Response(exc.status, orjson.dumps(doc), JSON + _header_lines(exc))


def _header_lines(exc: RequestError) -> bytes:
    return b"".join(k + b": " + v + b"\r\n" for k, v in exc.headers)


def is_openai(route: str) -> bool:
    return route in ("completions", "chat")


def parse(route: str, name: str, served: str, body: bytes) -> Job:
    """A generation request from its route ("generate", "generate_stream", "completions", "chat").

    Raises:
        BadRequest: The body is not what the route takes (the message names the field).
        ModelNotFound: An OpenAI body's ``model`` is not the served one.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    if route in ("generate", "generate_stream"):
        prompt = doc.get("text_input")
        params = doc.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequest("'parameters' must be an object")
        options = {k: params[k] for k in _OPTIONS if k in params}
        return Job(_request(prompt, "text_input", options), route == "generate_stream", _Oip(name))
    model = doc.get("model", served)
    if model != served:
        raise ModelNotFound(f"model {model!r} is not served here; this server serves {served!r}")
    if route == "chat":
        messages = doc.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise BadRequest("'messages' must be a non-empty list of {role, content} with string content")
        prompt = "\n".join(m["content"] for m in messages)
    else:
        prompt = doc.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
    options = {k: doc[k] for k in _OPTIONS if doc.get(k) is not None}
    max_tokens = doc.get("max_completion_tokens", doc.get("max_tokens"))
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    stream_options = doc.get("stream_options") or {}
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    return Job(_request(prompt, "messages" if route == "chat" else "prompt", options), bool(doc.get("stream")),
               _OpenAI(served, route == "chat", include_usage))


def _request(prompt: object, field: str, parameters: dict[str, Any]) -> InferRequest:
    if not isinstance(prompt, str):
        raise BadRequest(f"'{field}' must be a string")
    return InferRequest({"text_input": np.array([prompt], dtype=object)}, parameters)


class Generation:
    """One admitted generation: the token sink the model writes to, and the reply when it is done.

    Args:
        job: The parsed request.
        reply: The connection's late answer (``reply(Head)`` starts the stream).
        done: Called with the status answered (for the request metrics).
    """

    def __init__(self, job: Job, reply: Reply, done: Callable[[int], None]) -> None:
        self._job = job
        self._reply = reply
        self._done = done
        self._stream: Stream | None = None
        self.cancelled = False
        if job.stream:
            job.request.tokens = self

    def emit(self, token: str) -> None:
        if self.cancelled:
            # Answered already (a deadline's 504, a client gone): a model between its `cancelled` check and its
            # next token must not start a second answer on the connection, which may carry the next request.
            return
        stream = self._stream
        if stream is None:
            stream = self._stream = self._reply(Head(200, SSE))  # type: ignore[func-returns-value]
            stream.on_lost = self._lost
        stream.write(self._job.shape.event(token))

    def _lost(self) -> None:
        self.cancelled = True

    def answered(self, outcome: Tensors | RequestError) -> None:
        """The model's outputs, or the error to answer with (exactly once)."""
        shape, stream = self._job.shape, self._stream
        if isinstance(outcome, RequestError):
            self.cancelled = True  # answered (a deadline, say): a generation still running stops at its next token
            if stream is None:
                self._reply(shape.error(outcome))
            else:
                stream.write(_sse({"error": {"message": outcome.message, "code": outcome.status}}, b"error"))
                stream.abort()
            self._done(outcome.status)
            return
        if "text_output" not in outcome:
            self._done(400)
            self._reply(shape.error(BadRequest(f"model {shape.model!r} does not generate text (no 'text_output')")))
            return
        if self._job.stream:
            if stream is None:  # no token at all: the stream starts and ends here
                stream = self._reply(Head(200, SSE))  # type: ignore[func-returns-value]
            stream.write(shape.last_events(outcome))
            stream.end()
        else:
            self._reply(Response(200, orjson.dumps(shape.whole(outcome)), JSON))
        self._done(200)


def models_list(name: str) -> Response:
    """``GET /v1/models``: the one served model, as OpenAI lists models."""
    doc = {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "infra-inference"}]}
    return Response(200, orjson.dumps(doc), JSON)


def _sse(doc: dict[str, Any], event: bytes = b"") -> bytes:
    head = b"event: " + event + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(doc) + b"\n\n"


def _text(outputs: Tensors) -> str:
    return str(outputs["text_output"].reshape(-1)[0])


def _finish(outputs: Tensors) -> str:
    finish = outputs.get("finish_reason")
    return "length" if finish is None else str(finish.reshape(-1)[0])


def _usage(outputs: Tensors) -> dict[str, int]:
    prompt = int(outputs["prompt_tokens"].reshape(-1)[0]) if "prompt_tokens" in outputs else 0
    completion = int(outputs["completion_tokens"].reshape(-1)[0]) if "completion_tokens" in outputs else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
