"""``mlsgw serve``: run the relay."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from relay.config import ConfigError, load_config
from relay.logs import configure_logging
from relay.runner import UnsupportedBackend, run
from relay.store.base import StoreUnavailable


def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (default: $MLSGW_CONFIG or "
            "config/mlsgw.toml when present, else built-in defaults).",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Override network.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override network.port (and $PORT).")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run the relay: WebSocket, NIP-11, /health and /metrics on one port.

    Example: mlsgw serve --port 8080
    """
    environ = dict(os.environ)
    if host is not None:
        environ["MLSGW_NETWORK__HOST"] = host
    if port is not None:
        environ["PORT"] = str(port)
    try:
        settings = load_config(config, environ)
    except ConfigError as exc:
        typer.echo("mlsgw: invalid configuration, not starting:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    configure_logging(log_level)
    try:
        run(settings)
    except UnsupportedBackend as exc:
        typer.echo(f"mlsgw: {exc}", err=True)
        raise typer.Exit(2) from None
    except StoreUnavailable as exc:
        typer.echo(f"mlsgw: the event store is unavailable: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"mlsgw: cannot listen: {exc}", err=True)
        raise typer.Exit(1) from None
