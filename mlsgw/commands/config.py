"""``mlsgw config check|show``: validate a config file, print the effective config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, NoReturn, cast

import orjson
import typer

from mlsgw.commands.common import fail_early
from mlsgw.commands.usage import MlsgwCommand, MlsgwGroup
from mlsgw.errors import UsageError
from mlsgw.output import document as json_document
from mlsgw.output import emit_json
from mlsgw.report import ActionReport, CheckResult, Outcome, Status, new_run_id
from relay.config import ConfigError, load_config, redacted_dict, resolve_config_path

CHECK = "config check"
SHOW = "config show"
DEFAULTS = "built-in defaults"
"""What ``data.source`` says when no file was loaded."""

app = typer.Typer(
    help="Validate and show the relay configuration.", no_args_is_help=True, cls=MlsgwGroup
)


def _source(path: Path | None, environ: Mapping[str, str]) -> str:
    """The file the configuration comes from, as ``data.source`` names it."""
    named = resolve_config_path(path, environ)
    return str(named) if named else DEFAULTS


def _exit_invalid(report: ActionReport, as_json: bool) -> NoReturn:
    """Print an invalid configuration's report (the document, or the problems on stderr)
    and exit with its code."""
    if as_json:
        emit_json(json_document(report))
    else:
        typer.echo("invalid configuration:", err=True)
        for finding in report.findings:
            typer.echo(f"  {finding.summary}", err=True)
    raise typer.Exit(report.exit_code)


def _invalid(command: str, source: str, problems: list[str]) -> ActionReport:
    """The report of an invalid configuration: failed (exit 1), one CRITICAL finding per
    problem, the file under ``data.source``."""
    return ActionReport(
        command=command,
        outcome=Outcome.FAILED,
        summary=f"invalid configuration: {len(problems)} problem(s)",
        run_id=new_run_id(),
        data={"source": source},
        findings=tuple(CheckResult("config", Status.CRITICAL, p) for p in problems),
    )


def check_report(path: Path | None, environ: Mapping[str, str]) -> ActionReport:
    """``config check`` as the common report: done (exit 0) with the file under
    ``data.source``, the store backend and the keys accepted but not used when the
    configuration (the file under the ``MLSGW_*`` overrides of ``environ``) is valid; failed
    (exit 1) with one CRITICAL finding per problem when it is not."""
    source = _source(path, environ)
    try:
        config = load_config(path, environ)
    except ConfigError as exc:
        return _invalid(CHECK, source, list(exc.problems))
    return ActionReport(
        command=CHECK,
        outcome=Outcome.DONE,
        summary=f"{source}: valid",
        run_id=new_run_id(),
        data={
            "source": source,
            "store_backend": config.store_backend,
            "ignored": list(config.ignored),
        },
    )


@app.command("check", cls=MlsgwCommand)
def check(
    file: Annotated[Path | None, typer.Argument(help="Config file (default as for serve).")] = None,
    config_opt: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file, as for the other commands."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate a config file (and MLSGW_* overrides) without starting the relay.

    With ``--json``: the common document of every command, the file under ``data.source``
    and, when invalid, one critical finding per problem (nothing on stderr).

    Exit codes: 0 valid, 1 invalid, 3 usage error.

    Example: mlsgw config check config/mlsgw.toml
    """
    if file is not None and config_opt is not None and file != config_opt:
        error = UsageError("give the config file once (FILE or --config)")
        fail_early(CHECK, error, as_json=as_json)
    report = check_report(file or config_opt, dict(os.environ))
    if not report.ok:
        _exit_invalid(report, as_json)
    if as_json:
        emit_json(json_document(report))
    else:
        typer.echo(report.summary)
        typer.echo(f"  store backend: {report.data['store_backend']}")
        ignored = cast(list[str], report.data["ignored"])
        if ignored:
            typer.echo("  accepted but not used by mlsgw:")
            for item in ignored:
                typer.echo(f"    {item}")
    raise typer.Exit(report.exit_code)


@app.command("show", cls=MlsgwCommand)
def show(
    file: Annotated[Path | None, typer.Option("--config", "-c", help="Config file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration with secrets redacted, naming the file it loaded.

    With ``--json``: the common document of every command, the configuration under
    ``data.config`` and the file under ``data.source``; when the configuration is invalid,
    status failed with one critical finding per problem, as ``config check --json``.

    Exit codes: 0 shown, 1 invalid configuration, 3 usage error.

    Example: MLSGW_AUTH__ENABLED=false mlsgw config show --json
    """
    environ = dict(os.environ)
    try:
        config = load_config(file, environ)
    except ConfigError as exc:
        _exit_invalid(_invalid(SHOW, _source(file, environ), list(exc.problems)), as_json)
    document = redacted_dict(config)
    source = config.source or DEFAULTS
    if as_json:
        report = ActionReport(
            command=SHOW,
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
