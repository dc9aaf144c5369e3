"""Components that arrive from another language's program as resource references.

A TypeScript, Go or YAML program passes a `GpuPool` to an `InferenceService`
as a reference: the engine sends the pool's URN, not the Python object. The
Python SDK turns a reference into an object through a resource module
registered for the package; ours builds the component class with
`ResourceOptions(urn=...)`, and the component reads back the outputs the
engine holds for that URN (its `spec`, the validated arguments), from which
planning rebuilds the same plan the pool was created with.
"""

from __future__ import annotations

from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2

PACKAGE = "infra-inference"


def engine_outputs(urn: str) -> dict[str, Any]:
    """The outputs the engine holds for `urn`, a resource of this deployment.

    Read with the engine's own `getResource` invoke, synchronously: a
    component plans before it registers anything, so its references must be
    resolved inside its constructor (the engine answers from its state and
    never calls back into this process, so blocking here cannot deadlock).
    """
    args = struct_pb2.Struct()
    args["urn"] = urn
    request = resource_pb2.ResourceInvokeRequest(tok="pulumi:pulumi:getResource", args=args, acceptResources=True)
    response = settings.get_monitor().Invoke(request)
    if response.failures:
        raise RuntimeError(f"reading {urn} from the engine failed: {response.failures[0].reason}")
    returned = rpc.deserialize_properties(getattr(response, "return"))
    return dict(returned.get("state") or {})


class _Module(pulumi.runtime.ResourceModule):
    def __init__(self, classes: dict[str, type[pulumi.ComponentResource]]) -> None:
        self._classes = classes

    def version(self) -> None:
        return None

    def construct(self, name: str, typ: str, urn: str) -> pulumi.Resource:
        return self._classes[typ](name, {}, pulumi.ResourceOptions(urn=urn))  # type: ignore[call-arg]


def register(*classes: type[pulumi.ComponentResource]) -> None:
    """Let references to these component types arrive as objects (once per process)."""
    pulumi.runtime.register_resource_module(
        PACKAGE, "index", _Module({c.pulumi_type: c for c in classes}))  # type: ignore[attr-defined]
