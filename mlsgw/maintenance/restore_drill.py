"""The quarterly restore drill: the newest managed backup restored into a scratch database,
its documents counted against the backup's own count, the restore timed against the RTO and
the backup's age against the RPO, and the scratch database always deleted afterwards.

The expected count is the one the backup records (``Backup.stats.document_count``, the
database as of the backup's snapshot), not a count of the live database, which has moved on
since. The scratch database is counted per top-level collection, on the server (COUNT).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from mlsgw.backups.inventory import format_age
from mlsgw.backups.naming import database_name
from mlsgw.errors import LedgerError, NotFound, Unavailable
from mlsgw.gcp.backup_api import FirestoreBackupsApi, ManagedBackup, OperationStatus
from mlsgw.maintenance.drill import DrillOutcome, judge
from mlsgw.maintenance.task import need
from mlsgw.report import CheckResult, Status
from mlsgw.runbook.context import RunContext

NAME = "restore_drill"
TOTAL = "documents"
"""The key the judge compares under: the backup records one total, not one per collection."""


def no_backup(source: str | None) -> str:
    """What to do when there is no backup (of the database ``source``) to drill with."""
    of = f" of {source}" if source else ""
    return (
        f"no managed backup{of} to drill with: create a daily backup schedule with "
        "`mlsgw backup schedule --retention-days 14` and run the drill after the first backup"
    )


def scratch_id(now: datetime) -> str:
    """The scratch database's id for a drill started at ``now``: ``mlsgw-drill-YYYYMMDD-HHMM``."""
    return f"mlsgw-drill-{now:%Y%m%d-%H%M}"


def delete_command(project: str, database_id: str) -> str:
    """The gcloud command that deletes the scratch database by hand."""
    return f"gcloud firestore databases delete --database={database_id} --project={project}"


def newest_backup(
    backups: Iterable[ManagedBackup], database: str | None = None
) -> ManagedBackup | None:
    """The READY managed backup with the latest snapshot (of ``database``, a full name, when
    given), ``None`` when there is none."""
    ready = [
        b
        for b in backups
        if b.state == "READY"
        and b.snapshot_time is not None
        and (database is None or b.database == database)
    ]
    return max(ready, key=lambda b: b.snapshot_time or datetime.min, default=None)


def _delete_scratch(api: FirestoreBackupsApi, name: str) -> tuple[bool, str]:
    """Whether the scratch database is gone now (deleted, or never created), and why not."""
    try:
        api.delete_database(name)
    except NotFound:
        return True, ""
    except Exception as exc:  # whatever it is, the operator must learn the database is left
        return False, str(exc)
    return True, ""


def _failed(
    backup: ManagedBackup,
    scratch: str,
    stage: str,
    error: str,
    deleted: bool,
    cleanup: str,
    caution: str,
) -> CheckResult:
    fate = "deleted (or never created)" if deleted else f"NOT deleted: {cleanup}"
    return CheckResult(
        NAME,
        Status.CRITICAL,
        f"the drill failed while {stage}: {error}; the scratch database {scratch} was {fate}"
        + caution,
        data={"backup": backup.name, "scratch_database": scratch, "scratch_deleted": deleted},
    )


def _with_details(
    result: CheckResult, backup: ManagedBackup, scratch: str, counts: Mapping[str, int]
) -> CheckResult:
    lines = tuple(f"{name}: {n} documents" for name, n in counts.items())
    fate = "deleted" if result.data.get("scratch_deleted") else "NOT deleted"
    return replace(
        result,
        details=(*result.details, f"scratch database {scratch}: {fate}", *lines),
        data={
            **result.data,
            "database": backup.database,
            "scratch_database": scratch,
            "collections": dict(counts),
        },
    )


def restore_drill(ctx: RunContext, database: str | None = None) -> CheckResult:
    """Run the drill on the newest backup (of the database id ``database`` when given; see
    the module doc). Whatever fails after the restore started, the scratch database is
    deleted before the result is returned; a scratch database that could not be deleted is
    CRITICAL and the result gives the gcloud command that deletes it. A dry run reads the
    backups and changes nothing."""
    project = need(ctx.target.project, "--project", "the restore drill")
    api = ctx.cloud.firestore_backups()
    ctx.reporter.step("finding the newest managed backup")
    source = database_name(project, database) if database else None
    backup = newest_backup(api.list_backups(project), source)
    if backup is None:
        return CheckResult(NAME, Status.CRITICAL, no_backup(source))
    now = ctx.clock()
    database_id = scratch_id(now)
    scratch = database_name(project, database_id)
    age = now - (backup.snapshot_time or now)
    plan = (
        f"restore {backup.name} ({format_age(age)} old, of {backup.database}) "
        f"into the new database {database_id}",
        f"count its documents per collection and compare with the backup's "
        f"{backup.document_count if backup.document_count is not None else 'unknown'}",
        f"delete {database_id}",
    )
    if ctx.dry_run:
        return CheckResult(
            NAME,
            Status.INFO,
            f"dry run: would restore {backup.name} into the scratch database {database_id}, "
            "count, compare and delete it; nothing was created",
            details=plan,
            data={"backup": backup.name, "scratch_database": scratch, "dry_run": True},
        )
    try:
        api.get_database(scratch)
    except NotFound:
        pass
    else:
        return CheckResult(
            NAME,
            Status.CRITICAL,
            f"the scratch database {database_id} already exists (left by an earlier drill?); "
            f"it was not touched: check it and delete it with "
            f"`{delete_command(project, database_id)}`",
        )
    ctx.ledger.check_writable()
    ctx.confirm(f"Restore drill: {'; '.join(plan)}. Proceed?")
    result = _drill(ctx, api, backup, project, database_id, now)
    return _record(ctx, backup, scratch, plan, result)


def _drill(
    ctx: RunContext,
    api: FirestoreBackupsApi,
    backup: ManagedBackup,
    project: str,
    database_id: str,
    now: datetime,
) -> CheckResult:
    scratch = database_name(project, database_id)
    stage = "restoring"
    counts: Mapping[str, int] = {}
    error: str | None = None
    unfinished = False  # the restore may still run server-side: we lost the API or gave up
    restore_time = timedelta()

    def progress(status: OperationStatus) -> None:
        ctx.reporter.step(f"restoring {database_id}: {status.progress.describe()}")

    try:
        ctx.reporter.step(f"restoring {backup.name} into {database_id}")
        started = ctx.clock()
        api.restore_database(project, database_id, backup.name, progress)
        restore_time = ctx.clock() - started
        stage = "counting the documents"
        ctx.reporter.step(f"counting the documents of {database_id}")
        counts = ctx.cloud.firestore_documents().count_documents(scratch)
    except Exception as exc:  # any failure still deletes the scratch database below
        error = str(exc) or type(exc).__name__
        unfinished = stage == "restoring" and isinstance(exc, Unavailable)
    finally:
        ctx.reporter.step(f"deleting {database_id}")
        deleted, cleanup = _delete_scratch(api, scratch)
    if not deleted:
        cleanup = f"{cleanup}; delete it with `{delete_command(project, database_id)}`"
    if error is not None:
        caution = (
            f"; the restore may still finish and create it: check with "
            f"`gcloud firestore databases list --project={project}` and delete it with "
            f"`{delete_command(project, database_id)}`"
            if unfinished and deleted
            else ""
        )
        return _failed(backup, scratch, stage, error, deleted, cleanup, caution)
    expected = None if backup.document_count is None else {TOTAL: backup.document_count}
    outcome = DrillOutcome(
        backup=backup.name,
        backup_age=now - (backup.snapshot_time or now),
        restore_time=restore_time,
        expected=expected,
        restored={TOTAL: sum(counts.values())},
        scratch_deleted=deleted,
        cleanup_error=cleanup,
        rpo=timedelta(hours=ctx.target.rpo_hours),
    )
    return _with_details(judge(outcome), backup, scratch, counts)


def _record(
    ctx: RunContext,
    backup: ManagedBackup,
    scratch: str,
    plan: tuple[str, ...],
    result: CheckResult,
) -> CheckResult:
    """``result``, with a line saying so when its ledger record could not be written."""
    try:
        ctx.ledger.append(
            command=ctx.command,
            run_id=ctx.run_id,
            args={"task": NAME, "backup": backup.name, "scratch_database": scratch},
            plan=list(plan),
            pre_state=None,
            result={"status": result.status.value, "summary": result.summary, **result.data},
        )
    except LedgerError as exc:
        return replace(result, details=(*result.details, f"not recorded in the ledger: {exc}"))
    return result
