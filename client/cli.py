"""The `autoresearch` command line. Each concern registers its commands from its own module."""

from __future__ import annotations

import typer

from client import cli_eval, cli_lineage

app = typer.Typer(
    name="autoresearch",
    no_args_is_help=True,
    add_completion=False,
    help="Closed-loop ML research: specialists over MCP, an isolated evaluator, a shared lineage.",
)

for module in (cli_lineage, cli_eval):
    module.register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
