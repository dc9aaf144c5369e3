"""Each component's TypedDict args (what users and other languages see) agree with the spec that validates them.

Field by field: the same names, "Required." exactly where the spec has no
default, and a documented default that is the spec's default.
"""

from __future__ import annotations

import ast
import inspect
import re
from typing import Any, is_typeddict

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from infra_inference.components import autoscale_policy, gpu_pool, inference_service, platform, standby_pool
from infra_inference.specs.autoscale import AutoscalePolicySpec, CustomMetricSpec
from infra_inference.specs.platform import PlatformSpec, TenantSpec
from infra_inference.specs.pool import GpuPoolSpec, SharingSpec, TaintSpec
from infra_inference.specs.service import (
    BatchingSpec, BatchJobSpec, CanarySpec, InferenceServiceSpec, ModelSpec, RuntimeSpec, SecretKeySpec, VariantSpec,
)
from infra_inference.specs.standby import StandbyPoolSpec

PAIRS = [
    (autoscale_policy.AutoscalePolicyArgs, AutoscalePolicySpec),
    (autoscale_policy.CustomMetricArgs, CustomMetricSpec),
    (gpu_pool.GpuPoolArgs, GpuPoolSpec),
    (gpu_pool.SharingArgs, SharingSpec),
    (gpu_pool.TaintArgs, TaintSpec),
    (inference_service.InferenceServiceArgs, InferenceServiceSpec),
    (inference_service.ModelArgs, ModelSpec),
    (inference_service.RuntimeArgs, RuntimeSpec),
    (inference_service.SecretKeyArgs, SecretKeySpec),
    (inference_service.BatchingArgs, BatchingSpec),
    (inference_service.CanaryArgs, CanarySpec),
    (inference_service.VariantArgs, VariantSpec),
    (inference_service.BatchJobArgs, BatchJobSpec),
    (platform.InferencePlatformArgs, PlatformSpec),
    (platform.TenantArgs, TenantSpec),
    (standby_pool.StandbyPoolArgs, StandbyPoolSpec),
]
# Other components are passed as references, never validated as values; a spec's name is the component's.
REFERENCES = {"pool", "service", "services"}
FROM_COMPONENT_NAME = {"name"}


def field_docs(args: type) -> dict[str, str]:
    """The docstring under each field of a TypedDict, read from its source."""
    body = ast.parse(inspect.getsource(args)).body[0]
    assert isinstance(body, ast.ClassDef)
    docs = {}
    for field, doc in zip(body.body, body.body[1:], strict=False):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
            is_doc = isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
            docs[field.target.id] = " ".join(str(doc.value.value).split()) if is_doc else ""  # type: ignore[union-attr]
    return docs


def spellings(value: Any) -> set[str]:
    """How a doc may state a default: Default 8, Default "1", Default false, or `8 (default)`."""
    text = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
    return {f"Default {text or 'empty'}", f'Default "{text}"', f"{text} (default"}


@pytest.mark.parametrize(("args", "spec"), PAIRS, ids=lambda v: v.__name__)
def test_args_and_spec_have_the_same_fields(args: type, spec: type[BaseModel]) -> None:
    assert is_typeddict(args)
    keys = set(args.__annotations__)
    assert keys - REFERENCES == set(spec.model_fields) - (FROM_COMPONENT_NAME - keys)


@pytest.mark.parametrize(("args", "spec"), PAIRS, ids=lambda v: v.__name__)
def test_each_documented_default_and_requirement_is_the_specs(args: type, spec: type[BaseModel]) -> None:
    docs = field_docs(args)
    problems = []
    for name, doc in docs.items():
        if name in REFERENCES:
            continue
        assert doc, f"{args.__name__}.{name} has no docstring"
        field = spec.model_fields[name]
        required = field.default is PydanticUndefined and field.default_factory is None
        says_required = re.search(r"\bRequired\.", doc) is not None
        if args.__total__ and says_required:  # a total TypedDict needs every key by its type
            problems.append(f"{name}: 'Required.' is implied by the TypedDict")
        elif not args.__total__ and required != says_required:
            problems.append(f"{name}: the spec {'requires' if required else 'does not require'} it; doc: {doc!r}")
        default = field.default
        if isinstance(default, bool | int | float | str) and not any(s in doc for s in spellings(default)):
            problems.append(f"{name}: spec default {default!r} not stated; doc: {doc!r}")
        stated = re.search(r"Default (-?[\d.]+)\b", doc)
        if stated and isinstance(default, int | float) and float(stated.group(1)) != float(default):
            problems.append(f"{name}: doc says default {stated.group(1)}, spec has {default!r}")
    assert not problems, f"{args.__name__} vs {spec.__name__}:\n" + "\n".join(problems)
