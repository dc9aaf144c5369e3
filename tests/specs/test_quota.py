"""Tenant GPU quota: a total in whole-GPU equivalents, as per-resource caps that can never add up to more."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from infra_inference.render import render_stack
from infra_inference.specs.pool import GPU_EQUIVALENT
from infra_inference.specs.platform import TenantSpec


def _hard(doc_tenant: dict) -> dict[str, str]:
    [quota] = [o for o in render_stack({"platform": {"tenants": [doc_tenant]}}) if o["kind"] == "ResourceQuota"]
    return quota["spec"]["hard"]


def test_split_quota_caps_each_resource_at_its_share() -> None:
    hard = _hard({"name": "search", "gpu_quota": 4,
                  "gpu_quota_split": {"nvidia.com/gpu": 2, "nvidia.com/mig-1g.10gb": 2}})
    assert hard["requests.nvidia.com/gpu"] == "2"
    assert hard["requests.nvidia.com/mig-1g.10gb"] == "14"  # 2 GPUs of seven 1g.10gb slices each
    assert hard["requests.nvidia.com/mig-3g.40gb"] == "0"  # no share: none
    # The whole quota at the caps: 2 + 14 / 7 = 4 GPUs, not 2 + 2 (and not 4 per MIG profile on top).
    assert sum(int(n) * GPU_EQUIVALENT[k.removeprefix("requests.")] for k, n in hard.items()) == 4


def test_default_puts_the_whole_quota_on_nvidia_gpu_and_none_on_mig() -> None:
    hard = _hard({"name": "team", "gpu_quota": 3})
    assert hard["requests.nvidia.com/gpu"] == "3"
    assert {v for k, v in hard.items() if "mig-" in k} == {"0"}


@given(quota=st.integers(0, 64), shares=st.dictionaries(st.sampled_from(sorted(GPU_EQUIVALENT)),
                                                          st.floats(0, 1), max_size=5))
def test_caps_at_their_limits_never_exceed_the_total(quota: int, shares: dict[str, float]) -> None:
    total = sum(shares.values()) or 1.0
    split = {r: quota * v / total for r, v in shares.items()}  # shares summing to the quota, rounded anyhow
    tenant = TenantSpec.parse({"name": "t", "gpu_quota": quota, "gpu_quota_split": split})
    assert sum(n * GPU_EQUIVALENT[r] for r, n in tenant.resource_quota.items()) <= quota + 1e-9
