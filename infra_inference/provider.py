"""Component provider: the five components for TypeScript, Go, YAML and other Pulumi languages.

Installed as the executable resource plugin `pulumi-resource-infra-inference`
(a console script): the engine finds it on PATH, or `pulumi plugin install
resource infra-inference 0.1.0 --file <path>` puts it in the plugin cache.
The schema is inferred from the Args TypedDicts and the annotated outputs; a
component passed to another (`pool`, `service`, `services`) arrives as a
resource reference and is rebuilt by `components.references`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pulumi
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import main as serve

from infra_inference.components import references
from infra_inference.components.autoscale_policy import AutoscalePolicy
from infra_inference.components.gpu_pool import GpuPool
from infra_inference.components.inference_service import InferenceService
from infra_inference.components.platform import InferencePlatform
from infra_inference.components.standby_pool import StandbyPool

PACKAGE = references.PACKAGE
VERSION = "0.1.0"
COMPONENTS: list[type[pulumi.ComponentResource]] = [
    InferencePlatform, GpuPool, StandbyPool, InferenceService, AutoscalePolicy]
# Components that other components take as arguments.
REFERENCED: tuple[type[pulumi.ComponentResource], ...] = (GpuPool, InferenceService)


def schema() -> dict[str, Any]:
    """The package schema the plugin serves (sdk-docs/schema.json is this, written out)."""
    inferred = json.loads(ComponentProvider(COMPONENTS, PACKAGE, version=VERSION).schema or "{}")
    # The analyzer writes a reference to one of our own components as one into
    # another package (".../infra-inference/v0.1.0/schema.json#/resources/...")
    # and lists this package as its own dependency; SDK generators then try to
    # load us while loading us. Point such references into this schema.
    own = f"/{PACKAGE}/v{VERSION}/schema.json#"
    text = json.dumps(inferred).replace(f'"{own}', '"#')
    out = json.loads(text)
    out["dependencies"] = [d for d in out.get("dependencies", []) if d.get("name") != PACKAGE]
    if not out["dependencies"]:
        del out["dependencies"]
    return out


def main() -> None:
    """`pulumi-resource-infra-inference <engine address>`: serve the components over gRPC."""
    references.register(*REFERENCED)
    provider = ComponentProvider(COMPONENTS, PACKAGE, version=VERSION)
    provider.schema = json.dumps(schema())
    serve(provider, sys.argv[1:])
