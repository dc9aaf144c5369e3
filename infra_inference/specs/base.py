"""Base for every spec model and the one way to parse user input into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from infra_inference.errors import SpecError, SpecProblem, loc_to_path, problems_from_validation

S = TypeVar("S", bound="Spec")


class Spec(BaseModel):
    """Plain validated values: unknown keys are errors, instances are immutable.

    Field types and ranges are checked by pydantic; rules that relate several
    fields live in `cross_checks`, which returns problems instead of raising so
    that every one of them reaches the user at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def cross_checks(self) -> list[SpecProblem]:
        """Problems that involve more than one field; paths relative to this spec."""
        return []

    def all_problems(self, prefix: str = "") -> list[SpecProblem]:
        """`cross_checks` of this spec and of every nested spec, with full paths."""
        found = [SpecProblem(_join(prefix, p.path), p.message) for p in self.cross_checks()]
        for name in type(self).model_fields:
            found += _nested_problems(getattr(self, name), _join(prefix, name))
        return found

    @classmethod
    def parse(cls: type[S], data: Mapping[str, Any] | S, *, subject: str = "", prefix: str = "") -> S:
        """Validate `data`, raising one SpecError that names every bad field."""
        subject = subject or cls.__name__
        try:
            spec = data if isinstance(data, cls) else cls.model_validate(dict(data))
        except ValidationError as err:
            raise SpecError(problems_from_validation(err, prefix), subject=subject) from None
        problems = spec.all_problems(prefix)
        if problems:
            raise SpecError(problems, subject=subject)
        return spec


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _nested_problems(value: object, path: str) -> list[SpecProblem]:
    if isinstance(value, Spec):
        return value.all_problems(path)
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _nested_problems(v, loc_to_path([i], path))]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nested_problems(v, _join(path, str(k)))]
    return []
