"""The ``mlsgw`` console script, and the root of its command line.

``mlsgw serve`` runs on a command line of that one command: a relay instance then never
imports the runbook's Google Cloud, gRPC and Redis clients, which cost it ~45 MB of memory
and more than half of its start-up (``bench/coldstart.py``). Every other command line gets
the whole CLI (:mod:`mlsgw.cli`).
"""

from __future__ import annotations

import sys

import typer

from mlsgw import __version__
from mlsgw.commands import serve as serve_cmd
from mlsgw.commands.usage import MlsgwCommand, MlsgwGroup


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlsgw {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """MLS-over-Nostr gateway: the relay (serve) and the runbook as commands."""


def new_app() -> typer.Typer:
    """The ``mlsgw`` root group (``--version``, the usage rules) with ``serve`` on it; the
    runbook's commands are added by :mod:`mlsgw.cli`."""
    app = typer.Typer(
        name="mlsgw",
        cls=MlsgwGroup,
        help="MLS-over-Nostr gateway: the relay (serve) and the operator's runbook as commands.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    app.command("serve", cls=MlsgwCommand)(serve_cmd.serve)
    return app


def main() -> None:
    """Console-script entry point: ``mlsgw serve …`` on the relay's own command line, any
    other command line on the whole CLI (same options, help and exit codes for ``serve``)."""
    if sys.argv[1:2] == ["serve"]:
        new_app()()
        return
    from mlsgw.cli import app

    app()
