"""``mlsgw ledger show|verify``: read and check the audit ledger (R-O5)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mlsgw import output
from mlsgw.commands.common import (
    ConfigOpt,
    EndpointOpt,
    JsonOpt,
    LedgerOpt,
    RunbookCommand,
    new_run_id,
)
from mlsgw.errors import MlsgwError
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.target import resolve_target

app = typer.Typer(help="Show and verify the audit ledger of runbook actions.", no_args_is_help=True)


def _open(
    ledger: str | None, endpoint: str | None, config: Path | None, command: str, as_json: bool
) -> Ledger:
    try:
        target = resolve_target(config=config, ledger=ledger, endpoint=endpoint)
        return Ledger.at(target.ledger, os.environ, Cloud(target))
    except MlsgwError as exc:
        output.fail(exc, 3, command=command, as_json=as_json, run_id=new_run_id())


@app.command("show", cls=RunbookCommand)
def show(
    last: Annotated[int, typer.Option(help="Show the last N entries (0: all).", min=0)] = 20,
    command: Annotated[str | None, typer.Option(help="Only entries of this command.")] = None,
    ledger: LedgerOpt = None,
    endpoint: EndpointOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recorded actions, newest last.

    Example: mlsgw ledger show --last 5 --command rollback
    """
    book = _open(ledger, endpoint, config, "ledger show", as_json)
    try:
        records = book.records()
    except MlsgwError as exc:
        output.fail(exc, 3, command="ledger show", as_json=as_json, run_id=new_run_id())
    if command:
        records = [r for r in records if r.get("command") == command]
    if last:
        records = records[-last:]
    if as_json:
        document = {"command": "ledger show", "ok": True, "path": str(book.location)}
        output.emit_json({**document, "entries": records})
        return
    output.render_ledger(records, str(book.location), output.stdout_console())


@app.command("verify", cls=RunbookCommand)
def verify(
    ledger: LedgerOpt = None,
    endpoint: EndpointOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain: exit 0 intact, 2 tampered (edited, removed or inserted lines).

    Example: mlsgw ledger verify
    """
    book = _open(ledger, endpoint, config, "ledger verify", as_json)
    try:
        result = book.verify()
    except MlsgwError as exc:
        output.fail(exc, 3, command="ledger verify", as_json=as_json, run_id=new_run_id())
    if as_json:
        output.emit_json(
            {
                "command": "ledger verify",
                "ok": result.ok,
                "status": "intact" if result.ok else "broken",
                "path": str(book.location),
                "entries": result.entries,
                "problems": [{"line": p.line, "reason": p.reason} for p in result.problems],
            }
        )
    else:
        output.render_verification(result, str(book.location), output.stdout_console())
    raise typer.Exit(0 if result.ok else 2)
