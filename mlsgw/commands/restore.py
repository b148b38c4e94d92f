"""``mlsgw restore PATH`` (R-K5) and ``mlsgw restore --to-database NEW_DB`` (managed backups,
PITR), plus ``--resume RUN_ID`` / ``--reopen RUN_ID`` after a failed restore."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mlsgw.backups.restore import run_reopen, run_restore
from mlsgw.backups.restore_new import DATABASE_ENV, run_restore_new
from mlsgw.commands.common import (
    SERVICE_FIELDS,
    CommandOptions,
    check_probe_key,
    fail_early,
    run_command,
    runbook_command,
)
from mlsgw.errors import UsageError
from mlsgw.report import ActionReport
from mlsgw.runbook.context import RunContext


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {value!r}: give a UTC time like 2026-12-01T05:30Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@runbook_command((*SERVICE_FIELDS, "probe_key"), action=True, health_checks=False)
def restore(
    path: Annotated[
        str | None,
        typer.Argument(
            help="An export gs://BUCKET/PREFIX (in place), or with --to-database a managed "
            "backup projects/P/locations/L/backups/ID (see `mlsgw backup list`)."
        ),
    ] = None,
    to_database: Annotated[
        str | None,
        typer.Option(
            "--to-database",
            metavar="NEW_DB",
            help="Restore into this NEW database and switch the service to it (no downtime).",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="With --to-database: point-in-time (PITR) UTC time, whole minute.",
        ),
    ] = None,
    database: Annotated[
        str, typer.Option("--database", help="Firestore database id.")
    ] = "(default)",
    database_env: Annotated[
        str,
        typer.Option(help="Environment variable that gives the relay its database id."),
    ] = DATABASE_ENV,
    validate_url: Annotated[
        str | None,
        typer.Option(help="Internal URL of the relay to validate through while ingress is closed."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="RUN_ID", help="Continue the failed restore run RUN_ID (traffic stopped)."
        ),
    ] = None,
    reopen: Annotated[
        str | None,
        typer.Option(
            metavar="RUN_ID", help="Reopen traffic as restore run RUN_ID found it, no restore."
        ),
    ] = None,
    *,
    options: CommandOptions,
) -> None:
    """Restore Firestore: in place from an export (public traffic stopped meanwhile), or into
    a new database from a managed backup or a PITR time (--to-database).

    Exit codes: 0 done (or dry run), 1 failed (traffic stays stopped; the next commands are
    printed), 3 refused (not confirmed, no terminal and no --yes, no credentials, usage
    error).

    Example: mlsgw restore gs://my-proj-backups/20261201T060000Z --dry-run
    """
    try:
        when = _parse_at(at)
        if reopen is not None and (path or to_database or resume):
            raise UsageError("--reopen RUN_ID takes no PATH, --to-database or --resume")
        if reopen is None and path is None and when is None:
            raise UsageError("give the backup to restore (see `mlsgw backup list`)")
        if to_database is None and (when is not None or (path and not path.startswith("gs://"))):
            raise UsageError(
                "a managed backup or --at restores into a new database: add --to-database NEW_DB"
            )
        if to_database is not None and path and path.startswith("gs://"):
            raise UsageError("an export restores in place: drop --to-database")
    except UsageError as exc:
        fail_early("restore", exc, as_json=options.as_json)

    def body(ctx: RunContext) -> ActionReport:
        if reopen is not None:
            return run_reopen(ctx, reopen)
        if to_database is not None:
            return run_restore_new(
                ctx,
                path,
                new_database=to_database,
                at=when,
                database=database,
                database_env=database_env,
                validate_url=validate_url,
            )
        assert path is not None
        return run_restore(ctx, path, database=database, validate_url=validate_url, resume=resume)

    run_command("restore", options, body, prepare=check_probe_key)
