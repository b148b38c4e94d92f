"""``mlsgw serve``: run the relay."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from mlsgw.commands.usage import USAGE_EXIT
from relay.config import ConfigError, load_config
from relay.datalock import DataDirLocked, DataPathUnusable
from relay.logs import FORMATS, LEVELS, check_level, configure_logging
from relay.runner import UnsupportedBackend, run
from relay.store.base import StoreUnavailable

MAX_PORT = 65535


def _port_number(value: int | None) -> int | None:
    """``--port`` as given, or a usage error naming the valid range."""
    if value is not None and not 0 <= value <= MAX_PORT:
        raise typer.BadParameter(f"{value} is not a port number (0-{MAX_PORT})")
    return value


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
    port: Annotated[
        int | None,
        typer.Option(
            callback=_port_number, help="Override network.port (and $PORT); 0 picks a free port."
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help=f"{', '.join(LEVELS)} (default: $MLSGW_LOG_LEVEL, else INFO)."),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            help="auto (readable lines on a terminal, JSON otherwise), text or json.",
        ),
    ] = "auto",
) -> None:
    """Run the relay: WebSocket, NIP-11, /health and /metrics on one port.

    Every config key can be overridden by an environment variable
    MLSGW_<SECTION>__<KEY>, e.g. MLSGW_AUTH__ENABLED=false or
    MLSGW_EXTENSIONS__MLS_GATEWAY__DELIVERY=open; PORT (set by Cloud Run) overrides the port.

    Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 the store or the port is unavailable or
    the data directory is in use or cannot be created, 2 invalid or unsupported
    configuration, 3 usage error (an unknown option, a bad --port, --log-level or
    --log-format).

    Example: mlsgw serve --port 8080
    """
    environ = dict(os.environ)
    if host is not None:
        environ["MLSGW_NETWORK__HOST"] = host
    if port is not None:
        environ["PORT"] = str(port)
    try:
        level = check_level(log_level or environ.get("MLSGW_LOG_LEVEL") or "INFO")
        if log_format not in FORMATS:
            raise ValueError(f"invalid --log-format {log_format!r}: expected auto, text or json")
    except ValueError as exc:
        typer.echo(f"mlsgw: {exc}", err=True)
        raise typer.Exit(USAGE_EXIT) from None
    # Logging first: why serve does not start is a log record like any other (one JSON
    # object with its severity on Cloud Run), not a bare line beside them.
    configure_logging(level, log_format)
    try:
        settings = load_config(config, environ)
    except ConfigError as exc:
        problems = "".join(f"\n  {problem}" for problem in exc.problems)
        _not_starting(f"invalid configuration, not starting:{problems}", 2)
    try:
        run(settings)
    except UnsupportedBackend as exc:
        _not_starting(str(exc), 2)
    except (DataDirLocked, DataPathUnusable) as exc:
        _not_starting(f"not starting: {exc}", 1)
    except StoreUnavailable as exc:
        _not_starting(f"the event store is unavailable: {exc}", 1)
    except OSError as exc:
        _not_starting(f"cannot listen: {exc}", 1)


def _not_starting(reason: str, code: int) -> NoReturn:
    """Log why the relay does not start (CRITICAL) and exit with ``code``."""
    logging.getLogger("relay").critical(reason)
    raise typer.Exit(code)
