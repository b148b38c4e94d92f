"""``mlsgw backup``, ``backup list``, ``backup schedule`` (R-K4 and managed backups)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer

from mlsgw import output
from mlsgw.backups.backup import list_entries, list_table, run_backup
from mlsgw.backups.context import BackupContext
from mlsgw.backups.schedule import run_schedule
from mlsgw.commands.common import (
    ActionOptions,
    RunbookCommand,
    action_command,
    confirm,
    new_run_id,
)
from mlsgw.errors import LedgerError, MlsgwError
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.report import ActionReport, Outcome, Reporter
from mlsgw.target import Target

app = typer.Typer(invoke_without_command=True)


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class DataRunContext:
    """A :class:`~mlsgw.backups.context.BackupContext` built by the command."""

    target: Target
    cloud: Cloud
    ledger: Ledger
    reporter: Reporter
    run_id: str
    confirm: Callable[[str], None]
    dry_run: bool = False
    clock: Callable[[], datetime] = field(default=utc_now)


def run_data_command(
    command: str,
    options: ActionOptions,
    body: Callable[[BackupContext], ActionReport],
    *,
    needs_ledger: bool = True,
) -> NoReturn:
    """Resolve the target, open the ledger, run ``body``, render the report, exit."""
    run_id = new_run_id()
    as_json = options.as_json
    try:
        target = options.target()
        cloud = Cloud(target)
        ledger = Ledger.at(target.ledger, os.environ, cloud)
    except MlsgwError as exc:
        output.fail(exc, 3, command=command, as_json=as_json, run_id=run_id)
    with output.progress(enabled=not as_json) as reporter:

        def ask(question: str) -> None:
            with reporter.paused():
                confirm(question, yes=options.yes)

        ctx = DataRunContext(target, cloud, ledger, reporter, run_id, ask, options.dry_run)
        try:
            report = body(ctx)
        except LedgerError as exc:
            output.fail(exc, 1, command=command, as_json=as_json, run_id=run_id)
        except MlsgwError as exc:
            output.fail(exc, 3, command=command, as_json=as_json, run_id=run_id)
    if as_json:
        output.emit_json(output.action_document(report, target.redacted()))
    else:
        output.render_action(report, output.stdout_console())
    raise typer.Exit(report.exit_code)


BucketOpt = Annotated[
    str | None,
    typer.Option(
        "--bucket",
        help="Backup bucket (default: \\[ops] backup_bucket, else <project>-backups).",
    ),
]
DatabaseOpt = Annotated[str, typer.Option("--database", help="Firestore database id.")]


@app.callback()
@action_command
def backup(
    ctx: typer.Context,
    bucket: BucketOpt = None,
    database: DatabaseOpt = "(default)",
    *,
    options: ActionOptions,
) -> None:
    """Export Firestore (consistent snapshot) to gs://BUCKET/<UTC time>, with the service
    description and the relay config beside it; counts recorded in the ledger. Subcommands:
    `backup list` (exports and managed backups), `backup schedule` (daily managed backups).

    Exit 0 done (or dry run), 1 failed, 3 refused.

    Example: mlsgw backup --project my-proj --dry-run
    """
    if ctx.invoked_subcommand is not None:
        return
    run_data_command(
        "backup",
        options,
        lambda run: run_backup(run, bucket=bucket, database=database, config=options.config),
    )


@app.command("list", cls=RunbookCommand)
@action_command
def list_backups(
    bucket: BucketOpt = None,
    exports_only: Annotated[
        bool, typer.Option("--exports-only", help="Leave out Firestore managed backups.")
    ] = False,
    *,
    options: ActionOptions,
) -> None:
    """List exports in the backup bucket and managed backups, newest first, with age, size
    and document count. Exit 0, 1 when a source could not be read.

    Example: mlsgw backup list --json
    """

    def body(run: BackupContext) -> ActionReport:
        entries, problems = list_entries(run, bucket=bucket, managed=not exports_only)
        now = run.clock()
        outcome = Outcome.FAILED if problems else Outcome.DONE
        summary = f"{len(entries)} backup(s)" + (
            f"; not read: {'; '.join(problems)}" if problems else ""
        )
        return ActionReport(
            "backup list",
            outcome,
            summary,
            run.run_id,
            tables=(list_table(entries, now),),
            data={"backups": [e.as_dict(now) for e in entries], "problems": problems},
        )

    run_data_command("backup list", options, body)


@app.command("schedule", cls=RunbookCommand)
@action_command
def schedule(
    retention_days: Annotated[
        int,
        typer.Option(
            "--retention-days", min=1, max=98, help="Keep each daily backup this many days."
        ),
    ] = 14,
    database: DatabaseOpt = "(default)",
    *,
    options: ActionOptions,
) -> None:
    """Create or update the daily Firestore managed backup schedule (idempotent).

    Example: mlsgw backup schedule --retention-days 14 --yes
    """
    run_data_command(
        "backup schedule",
        options,
        lambda run: run_schedule(run, database=database, retention_days=retention_days),
    )
