"""``mlsgw restore PATH`` (R-K5): stop public traffic → import → validate → reopen → healthcheck.

If a step fails, traffic stays stopped and the report says which steps ran, which did not,
and the exact commands that continue the restore or reopen traffic. The saved ingress is
written to the ledger (a ``started`` line) before traffic is stopped, so ``--resume`` and
``--reopen`` find it even if this process dies mid-way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlsgw.backups.inventory import parse_manifest
from mlsgw.backups.naming import MANIFEST, database_name, export_time, overall_metadata, split_gs
from mlsgw.backups.plan import (
    HEALTHCHECK,
    IMPORT,
    REOPEN,
    STEPS,
    STOP,
    STOPPED_INGRESS,
    VALIDATE,
    RestorePlan,
    RestoreSource,
    compare_collections,
    count_step,
    next_commands,
)
from mlsgw.backups.safety import recorded, unwritable_ledger
from mlsgw.backups.service_writes import set_ingress
from mlsgw.backups.validate import (
    COLLECTION_COUNTS,
    collection_counts_step,
    healthcheck_steps,
    probe_steps,
    validation_url,
)
from mlsgw.errors import MlsgwError, Refused
from mlsgw.gcp.backup_api import OperationStatus
from mlsgw.gcp.base import ServiceChange
from mlsgw.report import ActionReport, Change, Outcome, Status, Step
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import record

COMMAND = "restore"


def _collection_counts(manifest: Mapping[str, object]) -> dict[str, int] | None:
    """The manifest's documents per collection, ``None`` when absent or not well formed."""
    counts = manifest.get("collection_counts")
    if not isinstance(counts, dict):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values()):
        return None
    return {str(name): int(n) for name, n in counts.items()}


def read_source(ctx: RunContext, uri: str, database: str) -> RestoreSource:
    """The export at ``uri``: it must exist; its time and document count where recorded,
    and its documents per collection where mlsgw's manifest has them."""
    bucket, prefix = split_gs(uri)
    uri = f"gs://{bucket}/{prefix}"
    objects = ctx.cloud.objects()
    listing = objects.list_objects(bucket, prefix + "/")
    overall = next((o for o in listing if o.name == overall_metadata(prefix)), None)
    if overall is None:
        raise Refused(f"{uri} is not a Firestore export (no {overall_metadata(prefix)})")
    manifest = parse_manifest(objects.read(bucket, f"{prefix}/{MANIFEST}"))
    taken = export_time(prefix.rsplit("/", 1)[-1]) or overall.updated
    documents = manifest.get("documents")
    if isinstance(documents, int):
        collections = _collection_counts(manifest)
        return RestoreSource(uri, taken, documents, f"manifest {MANIFEST}", collections)
    operation = ctx.cloud.firestore_backups().export_operation(database, uri)
    if operation is not None and operation.succeeded:
        return RestoreSource(uri, taken, operation.progress.documents, "its export operation")
    return RestoreSource(uri, taken, None, "unknown")


def saved_run(ctx: RunContext, run_id: str) -> dict[str, Any]:
    """The first ledger line of restore run ``run_id`` (it holds the saved ingress)."""
    for line in ctx.ledger.records():
        if line.get("run_id") == run_id and line.get("command") == COMMAND:
            return line
    raise Refused(f"no restore run {run_id} in the ledger {ctx.ledger.location}")


def _progress(ctx: RunContext) -> Any:
    def report(status: OperationStatus) -> None:
        ctx.reporter.step(f"importing: {status.progress.describe()} ({status.state.lower()})")

    return report


def run_restore(
    ctx: RunContext,
    uri: str,
    *,
    database: str = "(default)",
    validate_url: str | None = None,
    resume: str | None = None,
) -> ActionReport:
    """Restore the export at ``uri`` in place with public traffic stopped (see module doc)."""
    target = ctx.target
    if not target.project:
        raise Refused("no project given: set --project (or MLSGW_PROJECT, or [ops] project)")
    service_name = target.service_name
    db = database_name(target.project, database)
    ctx.reporter.step("reading the export, the service and the database")
    source = read_source(ctx, uri, db)
    service = ctx.cloud.run().get_service(service_name)
    ctx.cloud.firestore_backups().get_database(db)
    saved = service.ingress
    original_run = ctx.run_id
    if resume is not None:
        first = saved_run(ctx, resume)
        if first.get("args", {}).get("export") != source.uri:
            raise Refused(
                f"run {resume} restored {first.get('args', {}).get('export')}, not {source.uri}"
            )
        saved = str((first.get("pre_state") or {}).get("ingress") or saved)
        original_run = str(first.get("args", {}).get("original_run") or resume)
    plan = RestorePlan(
        source, db, service_name, saved, validation_url(service, validate_url), resume
    )
    now = ctx.clock()
    args = {"export": source.uri, "database": db, "original_run": original_run, "resume": resume}
    pre_state = {"ingress": saved, "etag": service.etag, "generation": service.generation}
    steps: list[Step] = []
    result: dict[str, Any] = {"saved_ingress": saved, "expected_documents": source.documents}
    notices: list[str] = []

    def report(outcome: Outcome, summary: str) -> ActionReport:
        done = ActionReport(
            COMMAND,
            outcome,
            summary,
            ctx.run_id,
            plan=plan.changes(),
            steps=tuple(steps),
            notices=tuple(notices),
            data={"result": result, "backup": source.describe(now)},
        )
        return recorded(ctx, done, args, pre_state, {**result, "steps": _steps(done)})

    def failed(step: str, detail: str) -> ActionReport:
        later = STEPS[STEPS.index(step) + 1 :]
        steps.extend(Step(name, Status.SKIPPED, "not run") for name in later)
        extra = ["--validate-url", validate_url] if validate_url else []
        commands = next_commands(plan, target, original_run, step, validate_flags=extra)
        notices.append(f"Traffic stays stopped (ingress {STOPPED_INGRESS}). Next:")
        notices.extend(f"  {line}" for line in commands)
        result.update(failed_step=step, next_commands=commands)
        ran = STEPS[: STEPS.index(step)]
        return report(
            Outcome.FAILED,
            f"{step} failed: {detail}; ran: {', '.join(ran) or 'nothing'}; "
            f"not run: {', '.join(later)}; traffic stays stopped",
        )

    if ctx.dry_run:
        ctx.reporter.step("validating the ingress change with Cloud Run (validate_only)")
        ctx.cloud.run().update_service(
            service_name,
            ServiceChange(ingress=STOPPED_INGRESS),
            etag=service.etag,
            validate_only=True,
        )
        steps.append(
            Step(
                "validate",
                Status.OK,
                "export, database and service read; ingress change accepted (validate_only)",
            )
        )
        return report(Outcome.PLANNED, "dry run: the plan above was validated; nothing was changed")
    if problem := unwritable_ledger(ctx):
        return ActionReport(COMMAND, Outcome.REFUSED, problem, ctx.run_id, plan=plan.changes())
    question = (
        f"Restore {db} from {source.describe(now)}? Public traffic stops until the restore "
        "is validated."
    )
    try:
        ctx.confirm(question)
    except Refused as exc:
        steps.append(Step("confirm", Status.SKIPPED, str(exc)))
        return report(Outcome.REFUSED, str(exc))
    # The saved ingress reaches the ledger before traffic stops: --resume/--reopen need it.
    started = ActionReport(COMMAND, Outcome.DONE, "started", ctx.run_id, plan=plan.changes())
    record(ctx, started, args, pre_state, {**result, "outcome": "started"})
    ctx.reporter.step("stopping public traffic (ingress internal)")
    try:
        stopped = set_ingress(ctx, service_name, STOPPED_INGRESS)
    except MlsgwError as exc:
        steps.append(Step(STOP, Status.CRITICAL, str(exc)))
        return failed(STOP, str(exc))
    already = " (already stopped)" if service.ingress == STOPPED_INGRESS else ""
    steps.append(Step(STOP, Status.OK, f"ingress {saved} → {stopped.ingress}{already}"))
    try:
        imported = ctx.cloud.firestore_backups().import_documents(db, source.uri, _progress(ctx))
    except MlsgwError as exc:
        steps.append(Step(IMPORT, Status.CRITICAL, str(exc)))
        return failed(IMPORT, str(exc))
    result["imported_documents"] = imported.progress.documents
    steps.append(
        Step(IMPORT, Status.OK, f"{imported.progress.documents} documents ({imported.name})")
    )
    ctx.reporter.step("validating the restored data")
    checks = [count_step(source.documents, imported.progress.documents, source.counted_by)]
    checks.append(_collections_check(ctx, source, db, result))
    checks.extend(probe_steps(ctx, plan.validate_url))
    steps.extend(checks)
    bad = [s for s in checks if s.status is Status.CRITICAL]
    if bad:
        steps.append(Step(VALIDATE, Status.CRITICAL, bad[0].detail))
        return failed(VALIDATE, bad[0].detail)
    steps.append(Step(VALIDATE, Status.OK, "the restored data checks out"))
    ctx.reporter.step(f"reopening traffic (ingress {saved})")
    try:
        reopened = set_ingress(ctx, service_name, saved)
    except MlsgwError as exc:
        steps.append(Step(REOPEN, Status.CRITICAL, str(exc)))
        return failed(REOPEN, str(exc))
    steps.append(Step(REOPEN, Status.OK, f"ingress {STOPPED_INGRESS} → {reopened.ingress}"))
    return _finish(ctx, steps, report, f"restored {source.uri} into {db}")


def _collections_check(
    ctx: RunContext, source: RestoreSource, db: str, result: dict[str, Any]
) -> Step:
    """The documents of each collection after the import (into ``result``), compared with
    the export's per-collection counts when its manifest has them, else only reported."""
    counted, result["collection_counts"] = collection_counts_step(ctx, db)
    if counted.status is not Status.OK:
        if source.collections is None:
            return counted
        missed = "; the export's per-collection counts could not be compared"
        return Step(counted.name, counted.status, counted.detail + missed)
    if source.collections is None:
        why = (
            "the manifest has no per-collection counts"
            if source.counted_by.startswith("manifest")
            else "there is no mlsgw manifest"
        )
        return Step(COLLECTION_COUNTS, Status.OK, f"{counted.detail} (not compared: {why})")
    return compare_collections(
        source.collections, result["collection_counts"], COLLECTION_COUNTS, source.counted_by
    )


def _finish(ctx: RunContext, steps: list[Step], report: Any, done: str) -> ActionReport:
    ctx.reporter.step("healthcheck")
    health = healthcheck_steps(ctx)
    steps.extend(health)
    worst = [s for s in health if s.status in (Status.CRITICAL, Status.UNKNOWN)]
    if worst:
        steps.append(Step(HEALTHCHECK, Status.CRITICAL, worst[0].detail))
        outcome: ActionReport = report(
            Outcome.FAILED,
            f"{done}; traffic is open again but the healthcheck fails: {worst[0].detail}",
        )
        return outcome
    steps.append(Step(HEALTHCHECK, Status.OK, "service Ready, /health and REQ answer"))
    finished: ActionReport = report(Outcome.DONE, done)
    return finished


def run_reopen(ctx: RunContext, run_id: str) -> ActionReport:
    """Restore the ingress saved by restore run ``run_id``, then the healthcheck."""
    first = saved_run(ctx, run_id)
    saved = str((first.get("pre_state") or {}).get("ingress") or "")
    if not saved:
        raise Refused(f"restore run {run_id} saved no ingress")
    name = ctx.target.service_name
    service = ctx.cloud.run().get_service(name)
    steps: list[Step] = []
    args = {"reopen": run_id, "original_run": run_id}
    plan = (Change(name, "ingress", service.ingress, saved),)

    def report(outcome: Outcome, summary: str) -> ActionReport:
        done = ActionReport(COMMAND, outcome, summary, ctx.run_id, plan=plan, steps=tuple(steps))
        return recorded(ctx, done, args, {"ingress": service.ingress}, {"steps": _steps(done)})

    if ctx.dry_run:
        return report(Outcome.PLANNED, "dry run: nothing was changed")
    if problem := unwritable_ledger(ctx):
        return ActionReport(COMMAND, Outcome.REFUSED, problem, ctx.run_id, plan=plan)
    try:
        ctx.confirm(f"Reopen traffic to {ctx.target.service} (ingress {saved})?")
    except Refused as exc:
        steps.append(Step("confirm", Status.SKIPPED, str(exc)))
        return report(Outcome.REFUSED, str(exc))
    try:
        after = set_ingress(ctx, name, saved)
    except MlsgwError as exc:
        steps.append(Step(REOPEN, Status.CRITICAL, str(exc)))
        return report(Outcome.FAILED, f"traffic is still stopped: {exc}")
    steps.append(Step(REOPEN, Status.OK, f"ingress {service.ingress} → {after.ingress}"))
    return _finish(ctx, steps, report, f"traffic reopened (ingress {saved}) without restoring")


def _steps(report: ActionReport) -> list[dict[str, str]]:
    return [{"name": s.name, "status": s.status.value, "detail": s.detail} for s in report.steps]
