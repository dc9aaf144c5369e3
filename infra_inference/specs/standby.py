"""StandbyPool arguments: warm capacity held by placeholder pods."""

from __future__ import annotations

from pydantic import Field

from infra_inference.specs.base import Spec
from infra_inference.specs.cache import MODEL_CACHE_MAX_BYTES, MODEL_CACHE_MIN_BYTES
from infra_inference.specs.image import ImageSpec
from infra_inference.specs.names import DnsLabel
from infra_inference.specs.uris import ModelUri


class StandbyPoolSpec(Spec):
    """Validated StandbyPool arguments (the pool is passed separately)."""

    instances: int | None = Field(
        None, ge=0, le=1000, description="Placeholders to keep; default one scaling step of the services "
                                         "on the pool (else 1).")
    slots_per_instance: int | None = Field(
        None, ge=1, description="GPU slots each placeholder holds; default one node's worth.")
    prepull_images: list[str] = Field(default_factory=list, description="Images pulled onto every pool node.")
    warm_models: list[ModelUri] = Field(default_factory=list, description="Model URIs cached on every pool node "
                                                                        "(no credentials in them).")
    model_cache_max_bytes: int = Field(
        MODEL_CACHE_MAX_BYTES, ge=MODEL_CACHE_MIN_BYTES,
        description="Bound on the namespace's node-local model cache while `warm_models` are fetched: set it as "
                    "the namespace's services set runtime.model_cache_max_bytes. Least recently used models no "
                    "replica serves are evicted to stay under it; a model larger than it fails the warm-up.")
    namespace: DnsLabel = Field("inference", description="Namespace of the placeholders and pre-pull DaemonSet.")
    runtime_image: ImageSpec = Field(default_factory=ImageSpec,
                                     description="Our runtime image, which warms the model cache.")
