"""The one error type users see for bad specs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from pydantic import ValidationError


class SpecProblem(NamedTuple):
    """One thing wrong with a spec: where (a dotted field path) and what to do."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """Every problem found in a spec, raised once, before any resource exists.

    The message lists each problem on its own line as ``field.path: what is
    wrong and how to fix it``; ``problems`` holds them for programs.
    """

    def __init__(self, problems: Sequence[SpecProblem], *, subject: str = "") -> None:
        self.problems: tuple[SpecProblem, ...] = tuple(problems)
        self.subject = subject
        head = f"invalid {subject}" if subject else "invalid spec"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{head} ({len(self.problems)} {noun}):\n{lines}")

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.problems]


def loc_to_path(loc: Iterable[int | str], prefix: str = "") -> str:
    """``("sharing", "replicas_per_gpu")`` -> ``sharing.replicas_per_gpu``; ints become ``[i]``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def problems_from_validation(err: ValidationError, prefix: str = "") -> list[SpecProblem]:
    """Turn pydantic's errors into ours, keeping field paths and dropping pydantic jargon."""
    problems: list[SpecProblem] = []
    for e in err.errors(include_url=False):
        # Model validators report at the model's own location; their message
        # already names fields, so it is kept as is.
        msg = str(e["msg"]).removeprefix("Value error, ")
        # "[key]" marks a dict key's own error (an env variable's name): the key is the field.
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]")))
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling against the reference in sdk-docs/reference.md"
        elif e["type"] == "missing":
            msg = "required field is missing"
        problems.append(SpecProblem(loc_to_path(loc, prefix), msg))
    return problems
