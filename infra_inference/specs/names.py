"""Kubernetes object names as validated strings."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _check(value: str) -> str:
    # 63 is the DNS label limit; children append "-gateway" etc., so leave room.
    if not _DNS_LABEL.match(value) or len(value) > 50:
        raise ValueError(f"{value!r} must be lowercase letters, digits and '-', start and end alphanumeric, "
                         f"at most 50 characters (children add suffixes)")
    return value


DnsLabel = Annotated[str, AfterValidator(_check)]
