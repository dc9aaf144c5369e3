"""Run Pulumi programs under `pulumi.runtime.set_mocks` and read back what they created."""

from __future__ import annotations

import asyncio

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi


@dataclass
class Created:
    """One resource the program registered: its type token, name, inputs and parent URN."""

    type: str
    name: str
    inputs: dict[str, Any]
    urn: str


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Created] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(Created(args.typ, args.name, dict(args.inputs), ""))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@dataclass
class Run:
    """What a program did: every custom resource, plus the parent of each (by name)."""

    resources: list[Created]
    parents: dict[str, str]
    outputs: dict[str, Any]

    def of_type(self, token: str) -> list[Created]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str, name: str) -> Created:
        found = [r for r in self.resources if r.type == token and r.name == name]
        assert len(found) == 1, f"expected one {token} named {name}, got {[r.name for r in self.of_type(token)]}"
        return found[0]

    def k8s_objects(self) -> list[dict[str, Any]]:
        """Kubernetes objects as the provider would receive them (apiVersion/kind/metadata/...)."""
        out = []
        for r in self.resources:
            if r.type.startswith("kubernetes:"):
                out.append(dict(r.inputs))
        return out


def run_program(program: Callable[[], dict[str, Any] | None], mocks: Recorder | None = None) -> Run:
    """Run `program` under fresh mocks; return its resources and resolved outputs.

    Exceptions raised while the program runs (including inside applies) propagate;
    pass `mocks` to see what reached the engine anyway.
    """
    # Pulumi's mocks run on the thread's current event loop; an earlier asyncio.run() in the
    # same process closes it and unsets it, so give every program a fresh one.
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_about_raised_errors)
    asyncio.set_event_loop(loop)
    mocks = mocks or Recorder()
    pulumi.runtime.set_mocks(mocks, project="test", stack="test", preview=False)
    parents: dict[str, str] = {}
    original = pulumi.Resource.__init__

    def spy(self: pulumi.Resource, t: str, name: str, custom: bool, props: Any = None,
            opts: pulumi.ResourceOptions | None = None, *a: Any, **kw: Any) -> None:
        if opts is not None and opts.parent is not None:
            parents[name] = getattr(opts.parent, "_name", "")
        original(self, t, name, custom, props, opts, *a, **kw)

    pulumi.Resource.__init__ = spy  # type: ignore[method-assign]
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def body() -> pulumi.Output[Any]:
        exported = program() or {}
        # Waiting on every output makes errors raised inside applies fail the run.
        return pulumi.Output.all(**exported).apply(lambda values: box.update(values))

    try:
        body()
    finally:
        pulumi.Resource.__init__ = original  # type: ignore[method-assign]
    return Run(mocks.resources, parents, box)


def _quiet_about_raised_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A failing program's error reaches the test through pulumi.runtime.test; Pulumi's
    # other futures holding the same error are then only reported at garbage collection.
    if context.get("message") == "Future exception was never retrieved":
        return
    loop.default_exception_handler(context)
