"""The runtime image is configuration: every container of ours follows it, a digest pins it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra_inference import SpecError
from infra_inference.render import render_stack
from infra_inference.specs.image import DEFAULT_IMAGE, ImageSpec
from infra_inference.specs.runtimes import PRESETS

REPO = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
MIRROR = {"registry": "registry.internal:5000/ml", "image": "runtime:0.1.0", "digest": DIGEST,
          "image_pull_policy": "Never"}
GPU_POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 2,
            "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
CHAT = {"model": {"uri": "echo", "format": "python"}, "pool": "gpu", "gpu_fraction": 0.25,
        "autoscale": {"min_replicas": 0, "max_replicas": 4, "scale_to_zero_after_s": 60}}


def _containers(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every container and init container by `<object name>/<container name>`."""
    out = {}
    for o in objs:
        spec = o.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            out[f"{o['metadata']['name']}/{c['name']}"] = c
    return out


def test_default_is_this_release_on_ghcr() -> None:
    assert ImageSpec().ref == "ghcr.io/infra-inference/runtime:0.1.0"
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert DEFAULT_IMAGE == f"runtime:{version}", "the default image tag follows the package version"


def test_digest_pins_the_reference_and_tag_stays_readable() -> None:
    assert ImageSpec.model_validate(MIRROR).ref == f"registry.internal:5000/ml/runtime:0.1.0@{DIGEST}"
    assert ImageSpec.from_ref(f"localhost/infra-inference/runtime:0.1.0-abc@{DIGEST}").digest == DIGEST


@pytest.mark.parametrize(("field", "value"), [
    ("digest", "sha256:short"), ("digest", "md5:" + "0" * 32), ("image", "Runtime:UPPER repo"),
    ("registry", "https://ghcr.io"), ("image_pull_policy", "Sometimes"),
])
def test_bad_image_field_is_named(field: str, value: str) -> None:
    with pytest.raises(SpecError) as err:
        render_stack({"platform": {"runtime_image": {field: value}}})
    assert f"platform.runtime_image.{field}" in str(err.value)


def test_platform_image_reaches_every_container_of_ours() -> None:
    objs = render_stack({
        "platform": {"runtime_image": MIRROR},
        "pools": {"gpu": GPU_POOL},
        "services": {"chat": CHAT},
        "standby": {"warm": {"pool": "gpu", "warm_models": ["s3://m/chat"]}},
    })
    ours = {k: c for k, c in _containers(objs).items() if not k.startswith(("gpu-", "warm-balloons"))}
    assert {"chat/server", "chat/cache-owner", "chat-gateway/gateway", "chat-autoscaler/autoscaler",
            "warm-prepull/warm-models", "warm-prepull/cache-owner"} <= set(ours)
    for key, c in ours.items():
        if key.endswith("/done"):  # the DaemonSet's pause container
            continue
        assert (c["image"], c["imagePullPolicy"]) == (f"registry.internal:5000/ml/runtime:0.1.0@{DIGEST}", "Never"), key


def test_a_service_image_of_its_own_keeps_our_helpers_on_the_runtime_image() -> None:
    triton = PRESETS["triton"].image
    objs = render_stack({"platform": {"runtime_image": MIRROR}, "pools": {"gpu": GPU_POOL}, "services": {
        "onnx": {**CHAT, "model": {"uri": "s3://m/x.onnx", "format": "onnx"},
                 "runtime": {"preset": "triton", "image_pull_policy": "Always"}}}})
    c = _containers(objs)
    assert (c["onnx/server"]["image"], c["onnx/server"]["imagePullPolicy"]) == (triton, "Always")
    assert c["onnx-gateway/gateway"]["image"].startswith("registry.internal:5000/ml/runtime:0.1.0@")


def test_service_image_wins_over_the_platform_default() -> None:
    own = {"registry": "localhost", "image": "infra-inference/runtime:dev", "image_pull_policy": "IfNotPresent"}
    objs = render_stack({"platform": {"runtime_image": MIRROR}, "pools": {"gpu": GPU_POOL},
                         "services": {"chat": {**CHAT, "runtime_image": own}}})
    refs = {k: c["image"] for k, c in _containers(objs).items() if k.startswith("chat")}
    assert set(refs.values()) == {"localhost/infra-inference/runtime:dev"}, refs


def test_no_image_is_hard_coded_in_render() -> None:
    hits = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "infra_inference" / "render").rglob("*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1) if "ghcr.io" in line or "infra-inference/runtime" in line]
    assert hits == []
