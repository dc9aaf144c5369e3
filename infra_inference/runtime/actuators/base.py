"""What the autoscaler asks of an actuator: how many replicas there are, and to change that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Replicas:
    """`current`: asked for (spec.replicas); `ready`: serving."""

    current: int
    ready: int


class Actuator(Protocol):
    async def replicas(self, deployment: str) -> Replicas | None:
        """The deployment's replicas now; None when they cannot be read (the autoscaler then holds)."""

    def ready_urls(self, deployment: str) -> list[str]:
        """Base URLs of the deployment's ready replicas (for utilization scrapes)."""

    async def scale(self, deployment: str, replicas: int) -> None:
        """Ask for `replicas` replicas."""

    async def close(self) -> None:
        """Release what the actuator holds (the local one stops its processes)."""
