"""The hop to a replica: one pooled keep-alive HTTP client (aiohttp) for every replica."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

# Headers a replica's answer keeps on its way back through the gateway.
_PASSED_BACK = ("content-type", "retry-after")


class ReplicaFailed(Exception):
    """The replica gave no answer: connection refused, reset or closed before a response."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class Upstream:
    """POSTs to replicas over pooled connections; opened and closed with the app's lifespan."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # limit=0: the dispatcher already bounds requests per replica by max_concurrency.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False),
                                              auto_decompress=False, skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, address: str, path: str, body: bytes, content_type: str, timeout_s: float) -> Answer:
        """The replica's answer.

        Raises:
            ReplicaFailed: No answer came (safe to send the request to another replica).
            TimeoutError: The answer did not come within `timeout_s`.
        """
        assert self._session is not None, "Upstream.open() first"
        try:
            async with self._session.post(f"http://{address}{path}", data=body,
                                          headers={"content-type": content_type},
                                          timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                data = await response.read()
                headers = [(k.encode(), v.encode()) for k in _PASSED_BACK
                           if (v := response.headers.get(k)) is not None]
                return Answer(response.status, data, headers)
        except asyncio.TimeoutError:
            raise TimeoutError from None
        except aiohttp.ClientConnectionError as exc:
            raise ReplicaFailed(f"{address}: {type(exc).__name__}: {exc}") from exc
