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

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_subdomain(value: str) -> str:
    if not _DNS_SUBDOMAIN.match(value) or len(value) > 253:
        raise ValueError(f"{value!r} is not a Kubernetes object name (lowercase letters, digits, '-' and '.', "
                         f"at most 253 characters)")
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits and '_', not "
                         f"starting with a digit)")
    return value


# A Secret's or ConfigMap's name.
ObjectName = Annotated[str, AfterValidator(_check_subdomain)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
