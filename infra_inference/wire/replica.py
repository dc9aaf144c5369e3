"""A replica's settings as render/ writes them into its pod: `INFRA_INFERENCE_*` environment variables.

runtime/server/settings.py's `ServerSettings` reads them (same field names
under the same prefix); tests/test_wire.py loads a rendered environment into
it, so a field renamed on either side fails there, not in a cluster.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from infra_inference.wire.names import DEFAULT_PORT, ENV_PREFIX


class ReplicaEnv(BaseModel):
    """The server settings a rendered replica sets; everything else keeps ServerSettings' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="'safetensors-mlp' or 'package.module:Class'.")
    model_uri: str = Field(description="Where the weights live; empty for a Python model.")
    model_name: str = Field(description="The name in inference URLs.")
    service: str = Field(description="The InferenceService's name: the `service` label of every metric.")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    max_concurrency: int = Field(ge=1)
    max_queue: int = Field(ge=0)
    timeout_s: float = Field(gt=0)
    cache_dir: str = Field(description="The node-local model cache, as mounted.")
    model_cache_max_bytes: int | None = Field(None, ge=1, description="The cache's bound; None: unbounded.")
    model_credentials_dir: str | None = Field(None, description="The model's credentials Secret, as mounted.")
    max_batch_size: int | None = Field(None, ge=1)
    max_wait_ms: float | None = Field(None, ge=0)
    gpu_memory_fraction: float | None = Field(None, gt=0, le=1)

    def env(self) -> dict[str, str]:
        """`INFRA_INFERENCE_<FIELD>` for every set field: 8 -> "8", 30.0 -> "30", 0.25 -> "0.25"."""
        return {f"{ENV_PREFIX}{k.upper()}": f"{v:g}" if isinstance(v, float) else str(v)
                for k, v in self.model_dump(exclude_none=True).items()}
