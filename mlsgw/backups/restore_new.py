"""``mlsgw restore --to-database NEW_DB``: a managed backup or a PITR time restored into a new
database, validated on a revision that gets no traffic, then (after confirmation) the
service switched to it with no downtime. The old database is kept.

Steps: restore database → validate database (readable, and its documents counted and
compared with the source: the backup's total, or each collection of the source database
as of the PITR time) → deploy revision (database id in the
environment, a tag, 0 %) → validate revision (``/health`` and REQ at its tag URL) →
confirm → switch traffic → verify ``/health``. Nothing public changes before the switch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mlsgw.actions import latest_traffic, pin_traffic
from mlsgw.backups.inventory import format_age
from mlsgw.backups.naming import database_name
from mlsgw.backups.safety import recorded, unwritable_ledger
from mlsgw.backups.service_writes import update_service
from mlsgw.backups.validate import COLLECTION_COUNTS, collection_counts_step, probe_steps
from mlsgw.commands.deploy import no_traffic_split
from mlsgw.errors import MlsgwError, NotFound, Refused, UsageError
from mlsgw.gcp.backup_api import DatabaseInfo, OperationStatus
from mlsgw.gcp.base import ServiceChange, ServiceState, TrafficKind, TrafficTarget
from mlsgw.probes import probe_health
from mlsgw.report import ActionReport, Change, Outcome, Status, Step
from mlsgw.runbook.context import RunContext

COMMAND = "restore"
TAG = "restored"
DATABASE_ENV = "MLSGW_DATA__DATABASE"
"""The relay's ``[data] database`` as an environment variable (the Firestore database id)."""
_DATABASE_ID = re.compile(r"[a-z][a-z0-9-]{2,61}[a-z0-9]")
_BACKUP_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/backups/[^/]+")
RESTORE, CHECK_DB, DEPLOY, CHECK_REV, SWITCH, VERIFY = (
    "restore database",
    "validate database",
    "deploy revision",
    "validate revision",
    "switch traffic",
    "verify",
)
STEPS = (RESTORE, CHECK_DB, DEPLOY, CHECK_REV, SWITCH, VERIFY)


def revision_for(service: str, database_id: str) -> str:
    """The new revision's name: ``<service>-<database id>`` (Cloud Run allows 63 chars)."""
    return f"{service}-{database_id}"[:63].rstrip("-")


def follows_latest(service: ServiceState) -> bool:
    """Traffic goes to LATEST (as opposed to pinned revisions)."""
    return any(t.kind is TrafficKind.LATEST and t.percent for t in service.traffic)


def switched_traffic(
    service: ServiceState, revision: str, follows: bool
) -> tuple[TrafficTarget, ...]:
    """100 % to ``revision`` with the other tags kept and the temporary one dropped: LATEST
    when the service ``follows`` LATEST (the new revision is the latest), else pinned."""
    split = latest_traffic(service) if follows else pin_traffic(service, revision)
    kept = [t for t in split if t.tag != TAG]
    if not follows and not any(t.revision == revision and t.percent == 100 for t in kept):
        kept.insert(0, TrafficTarget(TrafficKind.REVISION, 100, revision))
    return tuple(kept)


def run_restore_new(
    ctx: RunContext,
    backup: str | None,
    *,
    new_database: str,
    at: datetime | None,
    database: str = "(default)",
    database_env: str = DATABASE_ENV,
    validate_url: str | None = None,
) -> ActionReport:
    """Restore into ``new_database`` and switch the service to it (see module doc)."""
    target = ctx.target
    if not target.project:
        raise Refused("no project given: set --project (or MLSGW_PROJECT, or [ops] project)")
    if (backup is None) == (at is None):
        raise UsageError("--to-database takes a managed backup name or --at TIME (not both)")
    if not _DATABASE_ID.fullmatch(new_database):
        raise UsageError(
            f"{new_database!r} is not a database id: 4-63 of a-z, 0-9 and -, starting a letter"
        )
    name, api, run = target.service_name, ctx.cloud.firestore_backups(), ctx.cloud.run()
    source_db = database_name(target.project, database)
    new_name = database_name(target.project, new_database)
    now = ctx.clock()
    ctx.reporter.step("reading the service, the source and the new database id")
    service = run.get_service(name)
    source_text, backup_documents = _check_source(api, backup, at, source_db, now)
    try:
        api.get_database(new_name)
    except NotFound:
        pass
    else:
        raise Refused(f"{new_name} already exists; choose a new database id")
    revision = revision_for(target.service or "", new_database)
    old_database = service.plain_env().get(database_env) or database
    follows = follows_latest(service)
    plan = (
        Change(new_name, "restore", "", source_text),
        Change(
            name, "new revision", "", f"{revision} ({database_env}={new_database}, tag {TAG}, 0%)"
        ),
        Change(name, "traffic", _traffic(service.traffic), f"{revision} 100% after validation"),
    )
    steps: list[Step] = []
    notices: list[str] = []
    result: dict[str, Any] = {"new_database": new_name, "old_database": old_database}
    args = {"to_database": new_database, "backup": backup, "at": at.isoformat() if at else None}
    pre_state = {
        "traffic": [t.describe() for t in service.traffic],
        "database": old_database,
        "etag": service.etag,
    }

    def report(outcome: Outcome, summary: str) -> ActionReport:
        done = ActionReport(
            COMMAND,
            outcome,
            summary,
            ctx.run_id,
            plan=plan,
            steps=tuple(steps),
            notices=tuple(notices),
            data={"result": result},
        )
        return recorded(ctx, done, args, pre_state, result)

    def failed(step: str, detail: str) -> ActionReport:
        later = STEPS[STEPS.index(step) + 1 :]
        steps.extend(Step(s, Status.SKIPPED, "not run") for s in later)
        notices.append(f"No traffic moved: {old_database} still serves.")
        if follows and STEPS.index(step) > STEPS.index(DEPLOY):
            notices.append(
                f"Traffic is pinned to {service.main_revision()} while {revision} exists (it is "
                f"the latest, so LATEST would serve it): after deleting or fixing it, "
                "`mlsgw traffic --to-latest`."
            )
        if STEPS.index(step) > 0:
            notices.append(
                f"Left for inspection: {new_name}; delete it with `gcloud firestore databases "
                f"delete --database={new_database} --project={target.project}`."
            )
        return report(Outcome.FAILED, f"{step} failed: {detail}; traffic unchanged")

    if ctx.dry_run:
        change = ServiceChange(
            env={database_env: new_database},
            revision_name=revision,
            traffic=no_traffic_split(service, revision, TAG),
        )
        run.update_service(name, change, etag=service.etag, validate_only=True)
        steps.append(
            Step(
                "validate",
                Status.OK,
                f"{source_text}; {new_name} is free; revision accepted (validate_only)",
            )
        )
        return report(Outcome.PLANNED, "dry run: the plan above was validated; nothing was changed")
    if problem := unwritable_ledger(ctx):
        return ActionReport(COMMAND, Outcome.REFUSED, problem, ctx.run_id, plan=plan)
    try:
        ctx.confirm(
            f"Restore {source_text} into the new database {new_database}? "
            "The service is not changed yet."
        )
    except Refused as exc:
        steps.append(Step("confirm", Status.SKIPPED, str(exc)))
        return report(Outcome.REFUSED, str(exc))
    progress = _progress(ctx)
    source_counts: dict[str, int] | None = None
    not_counted = ""
    if at is not None:
        # Counted before the clone, which may take long: ``at`` is then further from the
        # edge of the version retention.
        ctx.reporter.step(f"counting the documents of {source_db} as of {at:%H:%M} UTC")
        source_counts, not_counted = _source_counts(ctx, source_db, at)
        result["expected_collection_counts"] = source_counts
        expected_total = None if source_counts is None else sum(source_counts.values())
    else:
        result["expected_collection_counts"] = None
        expected_total = backup_documents
    result["expected_documents"] = expected_total
    try:
        if backup is not None:
            restored = api.restore_database(target.project, new_database, backup, progress)
        else:
            assert at is not None
            restored = api.clone_database(target.project, new_database, source_db, at, progress)
    except MlsgwError as exc:
        steps.append(Step(RESTORE, Status.CRITICAL, str(exc)))
        return failed(RESTORE, str(exc))
    steps.append(Step(RESTORE, Status.OK, f"{restored.name} ({restored.location})"))
    try:
        checked = _check_database(api, new_name, restored)
    except MlsgwError as exc:
        steps.append(Step(CHECK_DB, Status.CRITICAL, str(exc)))
        return failed(CHECK_DB, str(exc))
    ctx.reporter.step(f"counting the documents of {new_name}")
    counted, result["collection_counts"] = collection_counts_step(ctx, new_name)
    if counted.status is not Status.OK:
        compared = Step(counted.name, counted.status, f"{counted.detail}; not compared")
    elif at is not None:
        compared = (
            exact_collections_step(source_counts, counted.detail, result["collection_counts"])
            if source_counts is not None
            else Step(COLLECTION_COUNTS, Status.WARNING, f"{counted.detail}; {not_counted}")
        )
    else:
        compared = total_step(backup_documents, counted.detail, result["collection_counts"])
    steps.append(compared)
    if compared.status is Status.CRITICAL:
        detail = f"{compared.detail}; {new_database} is kept for inspection"
        steps.append(Step(CHECK_DB, Status.CRITICAL, detail))
        return failed(CHECK_DB, detail)
    steps.append(Step(CHECK_DB, Status.OK, checked))
    ctx.reporter.step(f"deploying {revision} with no traffic")
    try:
        deployed = update_service(
            ctx,
            name,
            DEPLOY,
            lambda s: ServiceChange(
                env={database_env: new_database},
                revision_name=revision,
                traffic=no_traffic_split(s, revision, TAG),
            ),
        )
    except MlsgwError as exc:
        steps.append(Step(DEPLOY, Status.CRITICAL, str(exc)))
        return failed(DEPLOY, str(exc))
    steps.append(Step(DEPLOY, Status.OK, f"{revision}, tag {TAG}, 0% of traffic"))
    tag_url = next((t.uri for t in deployed.traffic_statuses if t.tag == TAG and t.uri), None)
    probes = probe_steps(ctx, validate_url or tag_url)
    steps.extend(probes)
    bad = [s for s in probes if s.status in (Status.CRITICAL, Status.SKIPPED)]
    if bad:
        steps.append(Step(CHECK_REV, Status.CRITICAL, bad[0].detail))
        return failed(CHECK_REV, bad[0].detail)
    steps.append(Step(CHECK_REV, Status.OK, f"{revision} answers on {new_database}"))
    try:
        ctx.confirm(f"Switch {target.service} to {new_database} ({revision} gets 100% of traffic)?")
    except Refused as exc:
        steps.append(Step(SWITCH, Status.SKIPPED, str(exc)))
        steps.append(Step(VERIFY, Status.SKIPPED, "not run"))
        notices.append(
            f"{revision} stays at 0% on its tag {TAG}; run again to switch, or delete {new_name}."
        )
        return report(Outcome.REFUSED, str(exc))
    try:
        after = update_service(
            ctx,
            name,
            SWITCH,
            lambda s: ServiceChange(traffic=switched_traffic(s, revision, follows)),
        )
    except MlsgwError as exc:
        steps.append(Step(SWITCH, Status.CRITICAL, str(exc)))
        return failed(SWITCH, str(exc))
    steps.append(Step(SWITCH, Status.OK, _traffic(after.traffic)))
    old_revision = service.main_revision()
    notices.append(
        f"The old database {old_database} is kept. "
        f"To go back: `mlsgw rollback --to {old_revision}`."
    )
    url = target.url or after.uri
    health = probe_health(url, target.timeout) if url else None
    if health is not None and not health.ok:
        steps.append(Step(VERIFY, Status.CRITICAL, f"{url}/health: {health.detail}"))
        return report(
            Outcome.FAILED, f"switched to {new_database}, but /health fails: {health.detail}"
        )
    steps.append(
        Step(
            VERIFY,
            Status.OK if health else Status.SKIPPED,
            f"{url}/health healthy" if health else "no URL",
        )
    )
    result.update(revision=revision, old_revision=old_revision)
    return report(
        Outcome.DONE, f"the service now uses {new_database} ({revision}); {old_database} is kept"
    )


def _traffic(traffic: tuple[TrafficTarget, ...]) -> str:
    return ", ".join(t.describe() for t in traffic) or "(none)"


def total_step(expected: int | None, listed: str, counted: Mapping[str, int]) -> Step:
    """The new database restored from a managed backup must hold exactly the documents the
    backup's metadata counts (the relay writes top-level collections only, so their sum is
    every document): fewer or more is CRITICAL naming both numbers; with no count in the
    metadata, a warning that they were not compared."""
    if expected is None:
        why = "the backup's metadata gives no document count"
        return Step(COLLECTION_COUNTS, Status.WARNING, f"{listed} (not compared: {why})")
    total = sum(counted.values())
    if total != expected:
        return Step(
            COLLECTION_COUNTS,
            Status.CRITICAL,
            f"{total} documents in the new database, the backup holds {expected} ({listed})",
        )
    return Step(COLLECTION_COUNTS, Status.OK, f"{listed}: {total} documents, as in the backup")


def exact_collections_step(
    expected: Mapping[str, int], listed: str, counted: Mapping[str, int]
) -> Step:
    """A PITR clone must hold exactly what the source held at that time: any collection
    with another count (or missing on either side) is CRITICAL, naming it and both numbers."""
    differ = [
        f"{name}: {counted.get(name, 0)} documents in the new database, "
        f"the source held {expected.get(name, 0)}"
        for name in sorted({*expected, *counted})
        if counted.get(name, 0) != expected.get(name, 0)
    ]
    if differ:
        return Step(COLLECTION_COUNTS, Status.CRITICAL, "; ".join(differ))
    return Step(COLLECTION_COUNTS, Status.OK, f"{listed}: as in the source at that time")


def _source_counts(
    ctx: RunContext, source_db: str, at: datetime
) -> tuple[dict[str, int] | None, str]:
    """The source's documents per collection as of ``at``, or ``None`` and why not."""
    try:
        return dict(ctx.cloud.firestore_documents().count_documents(source_db, read_time=at)), ""
    except MlsgwError as exc:
        return None, f"not compared: {source_db} could not be counted as of {at:%H:%M} UTC: {exc}"


def _check_source(
    api: Any, backup: str | None, at: datetime | None, source_db: str, now: datetime
) -> tuple[str, int | None]:
    """What will be restored, refused when unusable (not READY, PITR off, out of range), and
    the documents a managed backup holds by its metadata (``None``: unknown, or a PITR time)."""
    if backup is not None:
        if not _BACKUP_NAME.fullmatch(backup):
            raise UsageError(
                f"{backup!r} is not a managed backup (projects/P/locations/L/backups/ID; "
                "see `mlsgw backup list`)"
            )
        found = api.get_backup(backup)
        if found.state != "READY":
            raise Refused(f"{backup} is {found.state}, not READY")
        age = f", {format_age(now - found.snapshot_time)} ago" if found.snapshot_time else ""
        count = f", {found.document_count} documents" if found.document_count is not None else ""
        return f"backup {backup} (of {found.database}{age}{count})", found.document_count
    assert at is not None
    if at.second or at.microsecond:
        raise UsageError(f"--at {at.isoformat()}: point-in-time recovery takes whole minutes")
    info: DatabaseInfo = api.get_database(source_db)
    if not info.pitr_enabled and (
        info.earliest_version_time is None or at < info.earliest_version_time
    ):
        raise Refused(
            f"point-in-time recovery is off on {source_db}: only the last hour can be read; "
            "enable it with `gcloud firestore databases update "
            f"--database='{source_db.rsplit('/', 1)[-1]}' --enable-pitr`"
        )
    if info.earliest_version_time and at < info.earliest_version_time:
        raise Refused(
            f"--at {at:%Y-%m-%dT%H:%MZ} is before the earliest version kept "
            f"({info.earliest_version_time:%Y-%m-%dT%H:%MZ})"
        )
    if at >= now:
        raise UsageError("--at must be in the past")
    return f"{source_db} as of {at:%Y-%m-%d %H:%M} UTC ({format_age(now - at)} ago)", None


def _check_database(api: Any, name: str, restored: DatabaseInfo) -> str:
    info: DatabaseInfo = api.get_database(name)
    if info.uid != restored.uid:
        raise Refused(f"{name} is not the database the restore created (uid {info.uid})")
    return f"{name} readable ({info.location}, uid {info.uid})"


def _progress(ctx: RunContext) -> Any:
    def report(status: OperationStatus) -> None:
        ctx.reporter.step(f"restoring: {status.progress.describe()} ({status.state.lower()})")

    return report
