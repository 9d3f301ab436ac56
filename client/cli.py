"""The `autoresearch` command line. Each concern registers its commands from its own module."""

from __future__ import annotations

import os

import typer

from client import cli_dashboard, cli_eval, cli_lineage, cli_run, cli_serve, cli_study, cli_tasks, cli_worker

app = typer.Typer(
    name="autoresearch",
    no_args_is_help=True,
    add_completion=False,
    help="Closed-loop ML research: specialists over MCP, an isolated evaluator, a shared lineage.",
)

for module in (cli_run, cli_lineage, cli_dashboard, cli_eval, cli_tasks, cli_serve, cli_study, cli_worker):
    module.register(app)


@app.callback()
def _environment() -> None:
    # the one place the environment is read (STYLE D.16): every command sees the same settings
    cli_tasks.apply_environment(os.environ)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
