"""Kubernetes resource quantities ("500m", "2", "16Gi") as validated strings."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _check(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write e.g. '500m', '2', '16Gi'")
    return value


Quantity = Annotated[str, AfterValidator(_check)]
