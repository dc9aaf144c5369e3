"""`infra-inference` command line: one typer app, one module per command group.

Each runtime entrypoint lives beside the code it runs and is registered here,
so this file stays an index.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="infra-inference",
    help="GPU inference infrastructure as code: render manifests, serve models, scale them.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Keeps subcommands as subcommands even while only one is registered."""


def _register() -> None:
    from infra_inference.render.cli import render

    app.command("render")(render)
    from infra_inference.runtime.server.loading.cli import fetch

    app.command("fetch")(fetch)
    from infra_inference.runtime.server.batch import batch

    app.command("batch")(batch)
    from infra_inference.runtime.server.cli import serve

    app.command("serve")(serve)
    from infra_inference.runtime.gateway.cli import gateway

    app.command("gateway")(gateway)
    from infra_inference.runtime.autoscaler.cli import autoscaler

    app.command("autoscaler")(autoscaler)
    from infra_inference.runtime.dev.cli import dev

    app.command("dev")(dev)
    from infra_inference.terraform.cli import terraform

    app.add_typer(terraform, name="terraform")


def main() -> None:
    _register()
    app()
