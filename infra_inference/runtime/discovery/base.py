"""The one shape every replica source shares, and the simplest source: a fixed list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Publish = Callable[[str, list[str]], None]


class Discovery(Protocol):
    async def run(self, publish: Publish) -> None:
        """Publish the current replicas, then every change, until cancelled."""


class StaticDiscovery:
    def __init__(self, endpoints: dict[str, list[str]]) -> None:
        self._endpoints = endpoints

    async def run(self, publish: Publish) -> None:
        for deployment, addresses in self._endpoints.items():
            publish(deployment, addresses)
