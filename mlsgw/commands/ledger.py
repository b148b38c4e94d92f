"""``mlsgw ledger show|verify``: read and check the audit ledger (R-O5)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from mlsgw import output
from mlsgw.commands.common import (
    ConfigOpt,
    EndpointOpt,
    JsonOpt,
    LedgerOpt,
    RunbookCommand,
    fail_early,
)
from mlsgw.errors import MlsgwError
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.target import resolve_target

T = TypeVar("T")

app = typer.Typer(help="Show and verify the audit ledger of runbook actions.", no_args_is_help=True)


def _read(
    command: str,
    read: Callable[[Ledger], T],
    ledger: str | None,
    endpoint: str | None,
    config: Path | None,
    as_json: bool,
) -> tuple[str, T]:
    """Open the ledger and ``read`` it: (its location, what was read); exit 3 on failure."""
    try:
        target = resolve_target(config=config, ledger=ledger, endpoint=endpoint)
        book = Ledger.at(target.ledger, os.environ, Cloud(target))
        return book.location, read(book)
    except MlsgwError as exc:
        fail_early(command, exc, as_json=as_json)


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
    location, records = _read("ledger show", Ledger.records, ledger, endpoint, config, as_json)
    if command:
        records = [r for r in records if r.get("command") == command]
    if last:
        records = records[-last:]
    if as_json:
        document = {"command": "ledger show", "ok": True, "path": location}
        output.emit_json({**document, "entries": records})
        return
    output.render_ledger(records, location, output.stdout_console())


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
    location, result = _read("ledger verify", Ledger.verify, ledger, endpoint, config, as_json)
    if as_json:
        output.emit_json(
            {
                "command": "ledger verify",
                "ok": result.ok,
                "status": "intact" if result.ok else "broken",
                "path": location,
                "entries": result.entries,
                "problems": [{"line": p.line, "reason": p.reason} for p in result.problems],
            }
        )
    else:
        output.render_verification(result, location, output.stdout_console())
    raise typer.Exit(0 if result.ok else 2)
