"""Args arriving as pulumi.Output: which may, and how they are validated."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from infra_inference.errors import SpecError, SpecProblem


def is_output(value: object) -> bool:
    return isinstance(value, pulumi.Output) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, pulumi.Output) for v in value))


def split(args: Mapping[str, Any], deferrable: Mapping[str, Any], subject: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(args with Outputs replaced by placeholders, the Outputs by key).

    `deferrable` maps the keys that may be Outputs to their placeholder. Any
    other Output is an error: those values decide which resources exist and
    what they contain, which Pulumi must know before it creates anything.
    """
    plain: dict[str, Any] = {}
    deferred: dict[str, Any] = {}
    problems: list[SpecProblem] = []
    for key, value in args.items():
        if not is_output(value):
            plain[key] = value
        elif key in deferrable:
            deferred[key] = value
            plain[key] = deferrable[key]
        else:
            problems.append(SpecProblem(key, "is a pulumi.Output, but this field must be a plain value because it "
                                        "shapes the resources; pass a literal (Outputs are accepted for: "
                                        f"{', '.join(sorted(deferrable)) or 'none'})"))
    if problems:
        raise SpecError(problems, subject=subject)
    return plain, deferred


def validated(plain: Mapping[str, Any], deferred: Mapping[str, Any],
              validate: Callable[[dict[str, Any]], object]) -> Callable[[str], Any]:
    """A getter for each arg: plain values as they are, Outputs only after `validate` passed on all args.

    Feed the getter's results into resource inputs: a SpecError raised inside
    the apply fails those resources, so a bad Output never reaches the cloud API.
    """
    if not deferred:
        return lambda key: plain.get(key)

    def run(resolved: dict[str, Any]) -> dict[str, Any]:
        validate({**plain, **resolved})
        return resolved

    checked = pulumi.Output.all(**deferred).apply(run)
    return lambda key: checked.apply(lambda r: r[key]) if key in deferred else plain.get(key)
