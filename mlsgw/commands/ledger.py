"""``mlsgw ledger show|verify``: read and check the audit ledger (R-O5)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlsgw.commands.common import CommandOptions, RunbookCommand, run_command, runbook_command
from mlsgw.commands.usage import MlsgwGroup
from mlsgw.report import (
    ActionReport,
    CheckReport,
    CheckResult,
    Outcome,
    Status,
    Table,
    Verdict,
)
from mlsgw.runbook.context import RunContext

app = typer.Typer(
    help="Show and verify the audit ledger of runbook actions.",
    no_args_is_help=True,
    cls=MlsgwGroup,
)

LEDGER_FIELDS = ("ledger", "endpoint", "timeout")
SHOWN_COLUMNS = ("time", "command", "outcome", "summary", "principal", "run id")


def show_run(ctx: RunContext, last: int, command: str | None) -> ActionReport:
    """The ledger's entries, oldest first, filtered by command, the last ``last`` (0: all)."""
    records = ctx.ledger.records()
    if command:
        records = [r for r in records if r.get("command") == command]
    if last:
        records = records[-last:]
    rows = []
    for entry in records:
        result = entry.get("result") or {}
        cells = (
            entry.get("time"),
            entry.get("command"),
            result.get("outcome"),
            result.get("summary"),
            entry.get("principal"),
            entry.get("run_id"),
        )
        rows.append(tuple(str(c or "") for c in cells))
    location = ctx.ledger.location
    missing = "" if ctx.ledger.exists() else " (the ledger does not exist yet)"
    return ActionReport(
        command="ledger show",
        outcome=Outcome.DONE,
        summary=f"{len(records)} entries shown from {location}{missing}",
        run_id=ctx.run_id,
        tables=(Table(f"Ledger {location}", SHOWN_COLUMNS, tuple(rows)),),
        data={"path": location, "entries": records},
    )


def verify_run(ctx: RunContext) -> CheckReport:
    """INTACT (0), BROKEN with each broken line (2), or MISSING (3): a ledger that does not
    exist cannot vouch for anything."""
    location = ctx.ledger.location
    if not ctx.ledger.exists():
        reason = f"no ledger at {location}"
        finding = CheckResult("ledger", Status.UNKNOWN, reason)
        return CheckReport(
            "ledger verify",
            (finding,),
            ctx.run_id,
            title=f"Ledger {location}",
            verdict_override=Verdict.UNKNOWN,
            status_label="missing",
            summary_override=f"{reason}: nothing to verify (wrong --ledger, or removed?)",
            data={"path": location, "entries": 0},
        )
    result = ctx.ledger.verify()
    findings = tuple(
        CheckResult(f"line {p.line}", Status.CRITICAL, p.reason) for p in result.problems
    )
    if result.ok:
        summary = f"{result.entries} entries in {location}; the hash chain and its head verify"
    else:
        summary = f"the hash chain of {location} does not verify"
    return CheckReport(
        "ledger verify",
        findings,
        ctx.run_id,
        title=f"Ledger {location}",
        status_label="intact" if result.ok else "broken",
        summary_override=summary,
        data={
            "path": location,
            "entries": result.entries,
            "problems": [{"line": p.line, "reason": p.reason} for p in result.problems],
        },
    )


@app.command("show", cls=RunbookCommand)
@runbook_command(LEDGER_FIELDS)
def show(
    last: Annotated[int, typer.Option(help="Show the last N entries (0: all).", min=0)] = 20,
    command: Annotated[str | None, typer.Option(help="Only entries of this command.")] = None,
    *,
    options: CommandOptions,
) -> None:
    """List recorded actions, newest last.

    Exit codes: 0 listed, 3 the ledger cannot be read (or a usage error).

    Example: mlsgw ledger show --last 5 --command rollback
    """
    run_command(
        "ledger show",
        options,
        lambda ctx: show_run(ctx, last, command),
        needs_service=False,
        records=False,
    )


@app.command("verify", cls=RunbookCommand)
@runbook_command(LEDGER_FIELDS)
def verify(*, options: CommandOptions) -> None:
    """Check the ledger's hash chain and its head.

    Exit codes: 0 intact, 2 tampered (edited, removed or inserted lines, the last ones
    included), 3 missing or unreadable (or a usage error).

    Example: mlsgw ledger verify
    """
    run_command("ledger verify", options, verify_run, needs_service=False, records=False)
