"""`infra-inference serve`: one flag per ``ServerSettings`` field, generated so none is missed.

A flag that is not given leaves the field to the environment
(``INFRA_INFERENCE_<FIELD>``) and then to its default, which is why every
option defaults to None here.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import typer
from pydantic import ValidationError

from infra_inference.errors import SpecError, problems_from_validation
from infra_inference.runtime.server.lifecycle import serve as run_server
from infra_inference.runtime.server.settings import ServerSettings


def serve(**flags: Any) -> None:
    """Serve one model over HTTP: Open Inference Protocol v2, KServe v1, health and metrics.

    Every option can also be set in the environment as INFRA_INFERENCE_<OPTION>
    (e.g. INFRA_INFERENCE_MAX_CONCURRENCY=8); a flag wins over the environment.
    """
    try:
        settings = ServerSettings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as exc:
        typer.echo(str(SpecError(problems_from_validation(exc), subject="server settings")), err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise typer.Exit(run_server(settings))


def _option(name: str) -> inspect.Parameter:
    field = ServerSettings.model_fields[name]
    help_text = f"{field.description} (env INFRA_INFERENCE_{name.upper()}, default {field.default!s})"
    flag = f"--{name.replace('_', '-')}"
    if field.annotation is bool:  # a lone --flag could only ever say true
        flag = f"{flag}/--no-{flag[2:]}"
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, flag, help=help_text, show_default=False),
        annotation=field.annotation | None,
    )


serve.__signature__ = inspect.Signature([_option(name) for name in ServerSettings.model_fields])  # type: ignore[attr-defined]
serve.__annotations__ = {p.name: p.annotation for p in serve.__signature__.parameters.values()}  # type: ignore[attr-defined]
