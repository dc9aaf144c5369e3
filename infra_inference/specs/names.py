"""Kubernetes object names and environment variable names as validated strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator


def _matching(pattern: str, max_length: int, what: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value) or len(value) > max_length:
            raise ValueError(f"{value!r} {what}")
        return value

    return check


# 63 is the DNS label limit; children append "-gateway" etc., so leave room.
check_dns_label = _matching(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", 50,
    "must be lowercase letters, digits and '-', start and end alphanumeric, at most 50 characters "
    "(children add suffixes)")
DnsLabel = Annotated[str, AfterValidator(check_dns_label)]
# A label value (a revision recorded in `app.kubernetes.io/version`): at most 63 characters.
LabelValue = Annotated[str, AfterValidator(_matching(
    r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", 63,
    "is not a Kubernetes label value (letters, digits, '-', '_' and '.', starting and ending alphanumeric, "
    "at most 63 characters)"))]
# A Secret's or ConfigMap's name (a DNS subdomain).
ObjectName = Annotated[str, AfterValidator(_matching(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", 253,
    "is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253 characters)"))]
EnvName = Annotated[str, AfterValidator(_matching(
    r"^[A-Za-z_][A-Za-z0-9_]*$", 32_768,
    "is not an environment variable name (letters, digits and '_', not starting with a digit)"))]
