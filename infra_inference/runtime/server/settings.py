"""Model server configuration: environment (`INFRA_INFERENCE_*`) or CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra_inference.runtime.server.loading.sources import STALL_TIMEOUT_S
from infra_inference.runtime.transport.http1 import Limits
from infra_inference.wire.names import DEFAULT_PORT, ENV_PREFIX


class ServerSettings(BaseSettings):
    """Every knob of `infra-inference serve`.

    Each field is read from the environment as ``INFRA_INFERENCE_<FIELD>``
    (e.g. ``INFRA_INFERENCE_MAX_CONCURRENCY=8``) and can be overridden by the
    matching CLI flag (``--max-concurrency 8``).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="TCP port to listen on (0 picks a free one).")
    model: str = Field(
        "echo",
        description=(
            "Model implementation: 'echo' (returns its input), 'safetensors-mlp' (an MLP whose "
            "weights come from --model-uri), 'tiny-lm' (a character-level generator that streams "
            "tokens), or 'package.module:Class' for a user class."
        ),
    )
    model_name: str = Field(
        "",
        description="Name the model is served under in URLs; defaults to the implementation name.",
    )
    model_uri: str = Field(
        "",
        description="Where the weights live: a local path, file://, http(s)://, s3:// or gs:// URI.",
    )
    service: str = Field(
        "", description="The InferenceService this replica serves: every metric's `service` label (empty: none).",
    )
    model_credentials_dir: Path | None = Field(
        None,
        description="Files with the model source's credentials (the model's credentials Secret, mounted): "
                    "'authorization' for http(s), 'aws_access_key_id'/'aws_secret_access_key' for s3, "
                    "'gcs_service_account.json' for gs.",
    )
    model_stall_timeout_s: float = Field(
        STALL_TIMEOUT_S,
        gt=0.0,
        description="An http(s) model origin that sends nothing for this long fails the download (and the start).",
    )
    stream_weights: bool = Field(
        True,
        description=(
            "Load the weights while they download (models that can, e.g. safetensors-mlp); "
            "false: download and commit the whole file to the node cache first."
        ),
    )
    cache_dir: Path = Field(
        Path("/var/cache/infra-inference"),
        description="Node-local cache for fetched models; a second start from the same URI reads nothing remote.",
    )
    model_cache_max_bytes: int | None = Field(
        None,
        ge=1,
        description=(
            "Bound on everything under cache_dir (partial downloads included): before a download and "
            "before its commit the least recently used entries no replica on the node serves are evicted. "
            "A model larger than the bound fails to start with an error naming this setting. "
            "Unset: unbounded."
        ),
    )
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda[:N]'.")
    gpu_memory_fraction: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Share of the GPU's memory this replica's framework may use (a fractional GPU slot).",
    )
    max_concurrency: int = Field(4, ge=1, description="Most requests inside the model at once.")
    max_queue: int = Field(64, ge=0, description="Most requests waiting for the model; beyond it 429.")
    timeout_s: float = Field(30.0, gt=0.0, description="Per-request limit from arrival to answer; beyond it 504.")
    max_batch_size: int = Field(1, ge=1, description="Most requests merged into one predict call (1 = no batching).")
    max_wait_ms: float = Field(
        0.0, ge=0.0, description="How long the oldest waiting request may wait for its batch to fill."
    )
    max_request_bytes: int = Field(64 * 2**20, ge=1, description="Largest request body accepted; beyond it 413.")
    max_tensor_elements: int = Field(
        2**24, ge=1, description="Elements per input tensor (its shape's product); beyond it 400."
    )
    max_tensor_chars: int = Field(
        2**26, ge=1, description="Characters across the strings of one BYTES input tensor; beyond it 400."
    )
    max_buffered_bytes: int = Field(
        256 * 2**20,
        ge=1,
        description=(
            "Request bodies held at once across all connections, from their headers to their answer; "
            "a body that would pass it gets 503 with Retry-After before it is read."
        ),
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0.0,
        description=(
            "A request body must arrive within this plus 1 s per 16 KiB received, else 408 "
            "(a client trickling bytes cannot hold a connection, or a drain, forever)."
        ),
    )
    max_connections: int = Field(1024, ge=1, description="Open connections; one more is answered 503 and closed.")
    keep_alive_s: float = Field(
        75.0,
        gt=0.0,
        description=(
            "Close a connection idle this long (or this slow to send request headers). Above the "
            "gateway's own idle timeout, so that the gateway closes first and never reuses a closing one."
        ),
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After header sent with 429 (queue full).")
    drain_grace_s: float = Field(
        0.0,
        ge=0.0,
        description=(
            "After SIGTERM, keep answering 503 at least this long before exiting, so load balancers "
            "see the replica unready before its socket closes."
        ),
    )
    echo_delay_ms: float = Field(0.0, ge=0.0, description="echo model: fixed cost a of each batch (a + b * size).")
    echo_delay_per_item_ms: float = Field(
        0.0, ge=0.0, description="echo model: cost b of each request in a batch (a + b * size)."
    )
    token_delay_ms: float = Field(
        0.0, ge=0.0, description="tiny-lm: time each generated token takes, standing in for a decode step."
    )
    log_level: str = Field("warning", description="Log level; there are no access logs (they would cost more than the hot path).")

    @model_validator(mode="after")
    def _batch_fits_concurrency(self) -> Self:
        # A batch holds one concurrency slot per request, so a bigger batch could never form.
        if self.max_batch_size > self.max_concurrency:
            raise ValueError(
                f"max_batch_size ({self.max_batch_size}) must not exceed max_concurrency "
                f"({self.max_concurrency}): each request in a batch holds a concurrency slot"
            )
        return self

    @property
    def http_limits(self) -> Limits:
        """What a client may cost this server (``http1``)."""
        return Limits(max_body_bytes=self.max_request_bytes, idle_timeout_s=self.keep_alive_s,
                      body_timeout_s=self.body_timeout_s, max_connections=self.max_connections,
                      max_buffered_bytes=self.max_buffered_bytes)

    @property
    def served_name(self) -> str:
        """The name in `/v2/models/{name}` URLs."""
        return self.model_name or self.model.rsplit(":", 1)[-1].lower()
