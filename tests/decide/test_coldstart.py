"""The cold-start budget: worked estimates, and the errors and warnings a spec gets from it."""

from __future__ import annotations

from typing import Any

import pytest

from infra_inference.decide.coldstart import IMAGE_PULL_S, PROVISION_S, START_S, budget_problems, estimate
from infra_inference.errors import SpecError
from infra_inference.render import render_stack
from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.image import ImageSpec
from infra_inference.specs.service import InferenceServiceSpec
from infra_inference.specs.standby import StandbyPoolSpec

GKE = GpuPoolSpec.parse({"cloud": "gke", "cluster": "c", "location": "us-central1", "gpu_type": "l4"})
URI = "https://models.example.com/chat.safetensors"


def service(size: int = 5_000_000_000, timeout_s: float = 30, **autoscale: Any) -> InferenceServiceSpec:
    return InferenceServiceSpec.parse({
        "name": "chat", "model": {"uri": URI, "size_bytes": size}, "gpus": 1,
        "runtime": {"timeout_s": timeout_s},
        "autoscale": {"metric": "concurrency", "min_replicas": 0, "max_replicas": 4, "scale_to_zero_after_s": 60,
                      **autoscale}})


def test_a_cold_node_pays_provisioning_pull_and_load() -> None:
    # 120 s for the node, 180 s for the image, 5 GB at 64 MB/s = 78 s, 5 s to start: 383 s.
    b = estimate(service(), GKE, None)
    assert (b.provisioning_s, b.image_pull_s, b.model_load_s) == (PROVISION_S, IMAGE_PULL_S, pytest.approx(78.1, 0.01))
    assert b.total_s == pytest.approx(383.1, 0.01)


def test_a_standby_that_prepulls_and_warms_leaves_the_start_and_a_cache_read() -> None:
    standby = StandbyPoolSpec.parse({"prepull_images": [ImageSpec().ref], "warm_models": [URI]})
    b = estimate(service(), GKE, standby)
    assert b.total_s == pytest.approx(START_S + 5.0)  # 5 GB from NVMe at 1 GB/s
    assert b.total_s == b.best_case_s


def test_image_streaming_and_existing_clusters() -> None:
    streaming = GKE.model_copy(update={"image_streaming": True})
    assert estimate(service(), streaming, None).image_pull_s == 15
    existing = GpuPoolSpec.parse({"cloud": "existing", "cluster": "c", "gpu_type": "l4"})
    assert estimate(service(), existing, None).provisioning_s == 0  # it does not grow: nothing to provision


def test_timeout_shorter_than_the_best_case_is_a_spec_error() -> None:
    # 140 GB from the node cache alone is 140 s: a 30 s timeout fails the first requests of every wake.
    errors, _ = budget_problems(service(size=140_000_000_000), estimate(service(size=140_000_000_000), GKE, None))
    assert [p.path for p in errors] == ["runtime.timeout_s"] and "min_replicas >= 1" in errors[0].message
    with pytest.raises(SpecError) as err:
        render_stack({"services": {"chat": {"model": {"uri": URI, "size_bytes": 140_000_000_000},
                                            "runtime": {"timeout_s": 30},
                                            "autoscale": {"metric": "concurrency", "min_replicas": 0, "max_replicas": 4,
                                                          "scale_to_zero_after_s": 60}}}})
    assert "services.chat.runtime.timeout_s" in err.value.paths


def test_the_declared_setup_is_warned_about_in_render() -> None:
    doc = {"pools": {"gpu": {"cloud": "gke", "cluster": "c", "location": "us-central1", "gpu_type": "l4",
                             "max_nodes": 4}},
           "services": {"chat": {"pool": "gpu", "gpus": 1, "model": {"uri": URI, "size_bytes": 5_000_000_000},
                                 "runtime": {"timeout_s": 30},
                                 "autoscale": {"metric": "concurrency", "min_replicas": 0, "max_replicas": 4,
                                               "scale_to_zero_after_s": 60}}}}
    warnings: list[str] = []
    render_stack(doc, warn=warnings.append)
    assert [w.split(":")[0] for w in warnings] == ["services.chat.runtime.timeout_s",
                                                   "services.chat.autoscale.scale_to_zero_after_s"]
    assert "~383s" in warnings[0]
    warm = {**doc, "standby": {"warm": {"pool": "gpu", "prepull_images": [ImageSpec().ref], "warm_models": [URI]}}}
    warnings.clear()
    render_stack(warm, warn=warnings.append)
    assert warnings == []  # 10 s: within the timeout and the idle grace


def test_fixed_floors_need_no_budget() -> None:
    s = service(size=140_000_000_000, min_replicas=1, scale_to_zero_after_s=0)
    assert budget_problems(s, estimate(s, GKE, None)) == ([], [])
