"""Component provider: the five components for TypeScript, Go, YAML and other Pulumi languages.

`pulumi package add <path to this repo>` runs the root `__main__.py`, which
calls `main()`; Pulumi infers the schema from the Args TypedDicts and the
annotated outputs.
"""

import pulumi
from pulumi.provider.experimental import component_provider_host

from infra_inference.components.autoscale_policy import AutoscalePolicy
from infra_inference.components.gpu_pool import GpuPool
from infra_inference.components.inference_service import InferenceService
from infra_inference.components.platform import InferencePlatform
from infra_inference.components.standby_pool import StandbyPool

PACKAGE = "infra-inference"
VERSION = "0.1.0"
COMPONENTS: list[type[pulumi.ComponentResource]] = [
    InferencePlatform, GpuPool, StandbyPool, InferenceService, AutoscalePolicy]


def main() -> None:
    component_provider_host(components=COMPONENTS, name=PACKAGE, version=VERSION)
