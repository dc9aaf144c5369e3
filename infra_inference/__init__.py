"""infra_inference: GPU inference infrastructure as code.

Declare GPU pools, warm standby capacity, inference services and their
autoscaling as Pulumi components; `infra-inference render` gives the same
objects as YAML.

Names load on first use, so the runtime entrypoints (serve, gateway,
autoscaler) start without importing Pulumi.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SOURCES = {
    "AutoscalePolicy": "infra_inference.components.autoscale_policy",
    "AutoscalePolicyArgs": "infra_inference.components.autoscale_policy",
    "GpuPool": "infra_inference.components.gpu_pool",
    "GpuPoolArgs": "infra_inference.components.gpu_pool",
    "InferencePlatform": "infra_inference.components.platform",
    "InferencePlatformArgs": "infra_inference.components.platform",
    "InferenceService": "infra_inference.components.inference_service",
    "InferenceServiceArgs": "infra_inference.components.inference_service",
    "SpecError": "infra_inference.errors",
    "SpecProblem": "infra_inference.errors",
    "StandbyPool": "infra_inference.components.standby_pool",
    "StandbyPoolArgs": "infra_inference.components.standby_pool",
    "render_stack": "infra_inference.render.stack",
}

__all__ = sorted(_SOURCES)

if TYPE_CHECKING:
    from infra_inference.components.autoscale_policy import AutoscalePolicy, AutoscalePolicyArgs
    from infra_inference.components.gpu_pool import GpuPool, GpuPoolArgs
    from infra_inference.components.inference_service import InferenceService, InferenceServiceArgs
    from infra_inference.components.platform import InferencePlatform, InferencePlatformArgs
    from infra_inference.components.standby_pool import StandbyPool, StandbyPoolArgs
    from infra_inference.errors import SpecError, SpecProblem
    from infra_inference.render.stack import render_stack


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module 'infra_inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
