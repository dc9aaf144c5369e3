"""Where the runtime image comes from: one place to point a cluster at its own registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infra_inference.specs.base import Spec

PullPolicy = Literal["IfNotPresent", "Always", "Never"]

# The image this release publishes (tools/image/build.sh builds the same
# contents locally; sdk-docs/runtime-image.md shows how to push it elsewhere).
DEFAULT_REGISTRY = "ghcr.io/infra-inference"
DEFAULT_IMAGE = "runtime:0.1.0"

# <path>[:<tag>] as the distribution spec's grammar has them; the registry host
# goes in `registry`.
_REPOSITORY = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"


class ImageSpec(Spec):
    """The runtime image: our gateway, autoscaler and cache helpers, and every replica
    whose `runtime.image` names no image of its own.

    `ref` is `registry/image`, pinned with `@digest` when one is given (the tag
    stays for people reading the manifest; the runtime pulls by digest).
    """

    registry: str = Field(DEFAULT_REGISTRY, pattern=r"^([a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*)?$",
                          description="Registry host and path prefix, e.g. '123.dkr.ecr.us-east-1.amazonaws.com/ml' "
                                      "or 'localhost'; empty when `image` is a full reference.")
    image: str = Field(DEFAULT_IMAGE, pattern=rf"^{_REPOSITORY}(:{_TAG})?$",
                       description="Repository and tag under the registry, e.g. 'runtime:0.1.0'.")
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$",
                               description="Manifest digest ('sha256:<64 hex>'); pins the image exactly.")
    image_pull_policy: PullPolicy = Field(
        "IfNotPresent", description="Kubernetes imagePullPolicy: IfNotPresent, Always, or Never (the image is "
                                    "already on every node, e.g. imported into containerd).")

    @property
    def ref(self) -> str:
        base = f"{self.registry}/{self.image}" if self.registry else self.image
        return f"{base}@{self.digest}" if self.digest else base

    @classmethod
    def from_ref(cls, ref: str, image_pull_policy: PullPolicy = "IfNotPresent") -> ImageSpec:
        """The spec of a full reference `host/path/name:tag[@sha256:...]`."""
        ref, _, digest = ref.partition("@")
        registry, _, image = ref.rpartition("/")
        return cls(registry=registry, image=image, digest=digest or None, image_pull_policy=image_pull_policy)

