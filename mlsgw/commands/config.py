"""``mlsgw config check|show``: validate a config file, print the effective config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import orjson
import typer

from mlsgw.commands.common import new_run_id
from mlsgw.commands.usage import MlsgwCommand, MlsgwGroup
from mlsgw.output import document as json_document
from mlsgw.output import emit_json
from mlsgw.report import ActionReport, Outcome
from relay.config import Config, ConfigError, load_config, redacted_dict

app = typer.Typer(
    help="Validate and show the relay configuration.", no_args_is_help=True, cls=MlsgwGroup
)


def _load(path: Path | None) -> Config:
    try:
        return load_config(path, dict(os.environ))
    except ConfigError as exc:
        typer.echo("invalid configuration:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from None


@app.command("check", cls=MlsgwCommand)
def check(
    file: Annotated[Path | None, typer.Argument(help="Config file (default as for serve).")] = None,
    config_opt: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file, as for the other commands."),
    ] = None,
) -> None:
    """Validate a config file (and MLSGW_* overrides) without starting the relay.

    Exit codes: 0 valid, 1 invalid, 3 usage error.

    Example: mlsgw config check config/mlsgw.toml
    """
    if file is not None and config_opt is not None and file != config_opt:
        typer.echo("mlsgw: give the config file once (FILE or --config)", err=True)
        raise typer.Exit(2)
    config = _load(file or config_opt)
    typer.echo(f"{config.source or 'built-in defaults'}: valid")
    typer.echo(f"  store backend: {config.store_backend}")
    if config.ignored:
        typer.echo("  accepted but not used by mlsgw:")
        for item in config.ignored:
            typer.echo(f"    {item}")


@app.command("show", cls=MlsgwCommand)
def show(
    file: Annotated[Path | None, typer.Option("--config", "-c", help="Config file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration with secrets redacted, naming the file it loaded.

    With ``--json``: the common document of every command, the configuration under
    ``data.config`` and the file under ``data.source``.

    Exit codes: 0 shown, 1 invalid configuration, 3 usage error.

    Example: MLSGW_AUTH__ENABLED=false mlsgw config show --json
    """
    config = _load(file)
    document = redacted_dict(config)
    source = config.source or "built-in defaults"
    if as_json:
        report = ActionReport(
            command="config show",
            outcome=Outcome.DONE,
            summary=f"effective configuration from {source} (with MLSGW_* overrides)",
            run_id=new_run_id(),
            data={"source": source, "config": document},
        )
        emit_json(json_document(report))
        return
    typer.echo(f"# effective configuration from {source} (with MLSGW_* overrides)")
    typer.echo(_to_toml(document))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return orjson.dumps(str(value)).decode()


def _to_toml(document: dict[str, object], prefix: str = "") -> str:
    lines: list[str] = []
    tables: list[tuple[str, dict[str, object]]] = []
    arrays: list[tuple[str, list[dict[str, object]]]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((f"{prefix}{key}", value))
        elif value is None:
            lines.append(f"# {key} is not set")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, items in arrays:
        for item in items:
            lines.append(f"\n[[{name}]]")
            lines.append(_to_toml(item).strip())
    for name, table in tables:
        body = _to_toml(table, f"{name}.")
        lines.append(f"\n[{name}]\n{body}".rstrip())
    return "\n".join(lines).strip() + "\n"
