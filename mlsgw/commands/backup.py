"""``mlsgw backup``, ``backup list``, ``backup schedule`` (R-K4 and managed backups)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlsgw.backups.backup import list_entries, list_table, never_set_up, not_set_up, run_backup
from mlsgw.backups.naming import backup_bucket
from mlsgw.backups.schedule import run_schedule
from mlsgw.commands.common import (
    SERVICE_FIELDS,
    CommandOptions,
    RunbookCommand,
    run_command,
    runbook_command,
)
from mlsgw.commands.usage import MlsgwGroup
from mlsgw.report import ActionReport, Outcome
from mlsgw.runbook.context import RunContext

app = typer.Typer(invoke_without_command=True, cls=MlsgwGroup)

BACKUP_FIELDS = (*SERVICE_FIELDS, "backup_bucket")
"""The target of the backup commands: the service (for its description) and the bucket."""
DatabaseOpt = Annotated[str, typer.Option("--database", help="Firestore database id.")]


@app.callback()
@runbook_command(BACKUP_FIELDS, action=True, health_checks=False)
def backup(
    ctx: typer.Context,
    database: DatabaseOpt = "(default)",
    *,
    options: CommandOptions,
) -> None:
    """Back up Firestore: a consistent export to gs://BUCKET/<UTC time>.

    The service description and the relay config go beside it; counts are recorded in the
    ledger. Subcommands: `backup list` (exports and managed backups), `backup schedule`
    (daily managed backups).

    Exit codes: 0 done (or dry run), 1 failed, 3 refused (not confirmed, no terminal and no
    --yes, no credentials, usage error).

    Example: mlsgw backup --project my-proj --dry-run
    """
    if ctx.invoked_subcommand is not None:
        return
    run_command(
        "backup",
        options,
        lambda run: run_backup(run, database=database, config=options.config),
        needs_service=False,
    )


@app.command("list", cls=RunbookCommand)
@runbook_command(BACKUP_FIELDS)
def list_backups(
    exports_only: Annotated[
        bool, typer.Option("--exports-only", help="Leave out Firestore managed backups.")
    ] = False,
    *,
    options: CommandOptions,
) -> None:
    """List exports in the backup bucket and managed backups, newest first.

    Each with its age, size and document count.

    Exit codes: 0 listed, 1 a source could not be read, 3 usage error or no credentials.

    Example: mlsgw backup list --json
    """

    def body(run: RunContext) -> ActionReport:
        entries, problems = list_entries(run, managed=not exports_only)
        now = run.clock()
        notices: tuple[str, ...] = ()
        bucket = backup_bucket(run.target.project or "", None, run.target.backup_bucket)
        if not entries and never_set_up(run.target.backup_bucket, bucket, problems):
            problems, notices = [], (not_set_up(bucket),)
        not_read = f"; not read: {'; '.join(problems)}" if problems else ""
        return ActionReport(
            "backup list",
            Outcome.FAILED if problems else Outcome.DONE,
            f"{len(entries)} backup(s){not_read}",
            run.run_id,
            tables=(list_table(entries, now),),
            notices=notices,
            data={"backups": [e.as_dict(now) for e in entries], "problems": problems},
        )

    run_command("backup list", options, body, needs_service=False, records=False)


@app.command("schedule", cls=RunbookCommand)
@runbook_command(SERVICE_FIELDS, action=True, health_checks=False)
def schedule(
    retention_days: Annotated[
        int,
        typer.Option(
            "--retention-days", min=1, max=98, help="Keep each daily backup this many days."
        ),
    ] = 14,
    database: DatabaseOpt = "(default)",
    *,
    options: CommandOptions,
) -> None:
    """Create or update the daily Firestore managed backup schedule (idempotent).

    Exit codes: 0 done (also: already as wanted), 1 failed, 3 refused (not confirmed, no
    terminal and no --yes, no credentials, usage error).

    Example: mlsgw backup schedule --retention-days 14 --yes
    """
    run_command(
        "backup schedule",
        options,
        lambda run: run_schedule(run, database=database, retention_days=retention_days),
        needs_service=False,
    )
