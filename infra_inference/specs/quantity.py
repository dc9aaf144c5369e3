"""Kubernetes resource quantities ("500m", "2", "16Gi") as validated strings."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _check(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write e.g. '500m', '2', '16Gi'")
    return value


def _from_number(value: object) -> object:
    """`cpu: 2` or `cpu: 0.5` in YAML is a number; Kubernetes reads it as the quantity "2", and so do we."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return value


Quantity = Annotated[str, BeforeValidator(_from_number), AfterValidator(_check)]
