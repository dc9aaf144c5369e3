"""Request outcomes other than success, each with the HTTP status it maps to.

The data plane raises these; a transport turns them into its own error
responses (JSON ``{"error": message}`` with ``status`` over HTTP).
"""

from __future__ import annotations


class RequestError(Exception):
    """A request the server answers without a prediction."""

    status = 500

    def __init__(self, message: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(RequestError):
    """The request body or URL is malformed; the message says what is wrong."""

    status = 400


class ModelNotFound(RequestError):
    status = 404


class QueueFull(RequestError):
    """Admission refused: the model is busy and the queue is full. Safe to retry elsewhere."""

    status = 429


class Draining(RequestError):
    """Admission refused: the server is shutting down (or not loaded yet). Safe to retry elsewhere."""

    status = 503


class Timeout(RequestError):
    """The request was accepted but its answer did not come within ``timeout_s``."""

    status = 504


class ModelFailed(RequestError):
    """The model raised or broke its contract; a server-side bug, not the client's."""

    status = 500
