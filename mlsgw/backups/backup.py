"""``mlsgw backup`` and ``backup list`` (R-K4): a consistent Firestore export with its side
files, and the inventory of exports and managed backups."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlsgw import __version__
from mlsgw.backups.inventory import (
    BackupEntry,
    backups_table,
    exports_in,
    managed_entries,
    manifest_prefixes,
    newest_first,
    parse_manifest,
)
from mlsgw.backups.naming import (
    CONFIG_FILE,
    MANIFEST,
    SERVICE_FILE,
    backup_bucket,
    database_name,
    export_name,
    overall_metadata,
    snapshot_time,
)
from mlsgw.backups.redact import redact_service, relay_environment
from mlsgw.errors import MlsgwError, NotFound, Refused
from mlsgw.gcp.backup_api import ExportResult, OperationStatus, Progress
from mlsgw.gcp.clients import Cloud
from mlsgw.report import ActionReport, Change, Outcome, Status, Step, Table
from mlsgw.resources.base import Mutation
from mlsgw.resources.firestore_export import ExportRequest, ExportState, FirestoreExport
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, Trail, execute
from relay.config import ConfigError, load_config, redacted_dict

MANIFEST_FORMAT = "mlsgw-backup/1"
JSON = "application/json"


@dataclass(frozen=True)
class BackupPlan:
    """What ``mlsgw backup`` will do, decided before anything is written."""

    project: str
    database: str
    """Full name ``projects/P/databases/D``."""
    bucket: str
    prefix: str
    snapshot: datetime
    service_name: str | None

    @property
    def uri(self) -> str:
        """``gs://bucket/prefix``."""
        return f"gs://{self.bucket}/{self.prefix}"

    def changes(self) -> tuple[Change, ...]:
        """The plan lines."""
        side = ", ".join(p.rsplit("/", 1)[-1] for p in (SERVICE_FILE, CONFIG_FILE, MANIFEST))
        return (
            Change(self.database, "export", "", f"{self.uri} as of {self.snapshot:%H:%M} UTC"),
            Change(f"{self.uri}/", "side files", "", side),
        )


def plan_backup(ctx: RunContext, *, bucket: str | None, database: str, now: datetime) -> BackupPlan:
    """The bucket (flag, ``[ops]``, ``<project>-backups``), prefix and snapshot time."""
    project = ctx.target.project
    if not project:
        raise Refused("no project given: set --project (or MLSGW_PROJECT, or [ops] project)")
    return BackupPlan(
        project=project,
        database=database_name(project, database),
        bucket=backup_bucket(project, bucket, ctx.target.backup_bucket),
        prefix=export_name(now),
        snapshot=snapshot_time(now),
        service_name=ctx.target.service_name if ctx.target.has_service else None,
    )


def _side_files(
    ctx: RunContext, plan: BackupPlan, config: Path | None
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The redacted service description and effective relay config (and how it was built)."""
    if plan.service_name is None:
        return {}, {}, "no Cloud Run service configured: service and relay config not saved"
    description = ctx.cloud.run().describe_service(plan.service_name)
    env = relay_environment(description)
    try:
        relay: dict[str, Any] = redacted_dict(load_config(config, env))
        how = (
            f"relay config: {config or 'defaults'} + {len(env)} MLSGW_* variable(s) of the service"
        )
    except ConfigError as exc:
        relay = {"error": "the effective config could not be built", "problems": exc.problems}
        how = "relay config could not be built: " + "; ".join(exc.problems)
    return redact_service(description), relay, how


COLLECTION_COUNTS = "collection counts"


def snapshot_counts(
    ctx: RunContext, plan: BackupPlan, exported: ExportResult
) -> tuple[Step, dict[str, int] | None]:
    """The documents of each top-level collection at the export's snapshot time (COUNT
    aggregations with that ``read_time``), or ``None`` when they could not be counted: then
    the step is a warning, never a failure of the backup."""
    at = exported.snapshot_time or plan.snapshot
    try:
        counts = dict(ctx.cloud.firestore_documents().count_documents(plan.database, at))
    except MlsgwError as exc:
        detail = (
            f"could not count the collections as of the snapshot: {exc}; the manifest records"
            " them as unknown, so a restore compares the total only"
        )
        return Step(COLLECTION_COUNTS, Status.WARNING, detail), None
    listed = ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "no collections"
    return Step(COLLECTION_COUNTS, Status.OK, f"{listed} (as of {at:%H:%M} UTC)"), counts


def _manifest(
    plan: BackupPlan, result: ExportResult, ctx: RunContext, counts: dict[str, int] | None
) -> dict[str, Any]:
    progress = result.operation.progress
    return {
        "format": MANIFEST_FORMAT,
        "export": result.output_uri_prefix,
        "database": plan.database,
        "snapshot_time": (result.snapshot_time or plan.snapshot).isoformat(),
        "operation": result.operation.name,
        "documents": progress.documents,
        "bytes": progress.bytes,
        "collections": list(result.collection_ids) or "all",
        "collection_counts": counts,
        "service": plan.service_name,
        "run_id": ctx.run_id,
        "mlsgw_version": __version__,
    }


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _progress(ctx: RunContext, verb: str) -> Any:
    def report(status: OperationStatus) -> None:
        ctx.reporter.step(f"{verb}: {status.progress.describe()} ({status.state.lower()})")

    return report


def run_backup(
    ctx: RunContext,
    *,
    bucket: str | None = None,
    database: str = "(default)",
    config: Path | None = None,
) -> ActionReport:
    """Export the database as of a whole-minute snapshot to ``gs://<bucket>/<UTC time>``,
    write the service description, relay config and manifest beside it, record the export
    path and document counts in the ledger. A dry run validates and writes nothing."""
    plan = plan_backup(ctx, bucket=bucket, database=database, now=ctx.clock())
    resource = FirestoreExport(
        ctx.cloud.firestore_backups(),
        ctx.cloud.objects(),
        plan.database,
        plan.bucket,
        plan.prefix,
        _progress(ctx, "exporting"),
    )

    def applied(state: ExportState) -> str:
        progress = state.result.operation.progress if state.result else Progress()
        return f"{progress.documents} documents, {progress.bytes} bytes"

    def export_failed(run: RunContext, trail: Trail, exc: MlsgwError) -> str:
        trail.steps.append(Step("side files", Status.SKIPPED, "not run"))
        return f"the export failed: {exc}"

    def side_files(run: RunContext, trail: Trail) -> str | None:
        state: ExportState = trail.after["export"]
        assert state.result is not None
        return _write_side_files(run, plan, state.result, config, trail)

    action = Action(
        command="backup",
        args={
            "export": plan.uri,
            "database": plan.database,
            "snapshot_time": plan.snapshot.isoformat(),
        },
        mutations=(
            Mutation(
                "export",
                resource,
                lambda _: ExportRequest(plan.snapshot),
                lambda _, __: plan.changes(),
                applied,
            ),
        ),
        question=f"Export {plan.database} to {plan.uri}?",
        on_failure=export_failed,
        finish=side_files,
        verify=lambda _, trail: (
            Outcome.DONE,
            f"exported {trail.result.get('documents')} documents to {plan.uri}",
        ),
    )
    return execute(ctx, action)


def _write_side_files(
    ctx: RunContext, plan: BackupPlan, exported: ExportResult, config: Path | None, trail: Trail
) -> str | None:
    """Service description, relay config and manifest beside the export (with the documents
    per collection as of the snapshot, ``null`` when unknown); the export path and counts
    into the ledger's result. Why it failed, else ``None``."""
    progress = exported.operation.progress
    trail.result.update(
        export=exported.output_uri_prefix,
        operation=exported.operation.name,
        documents=progress.documents,
        bytes=progress.bytes,
    )
    counted, counts = snapshot_counts(ctx, plan, exported)
    trail.steps.append(counted)
    trail.result["collection_counts"] = counts
    objects = ctx.cloud.objects()
    try:
        service, relay, how = _side_files(ctx, plan, config)
        if service:
            objects.write(plan.bucket, f"{plan.prefix}/{SERVICE_FILE}", _dump(service), JSON)
            objects.write(plan.bucket, f"{plan.prefix}/{CONFIG_FILE}", _dump(relay), JSON)
        manifest = _manifest(plan, exported, ctx, counts)
        objects.write(plan.bucket, f"{plan.prefix}/{MANIFEST}", _dump(manifest), JSON)
        trail.steps.append(Step("side files", Status.OK, how))
        if objects.read(plan.bucket, overall_metadata(plan.prefix)) is None:
            raise NotFound(f"{plan.uri} has no {overall_metadata(plan.prefix)}")
    except MlsgwError as exc:
        trail.steps.append(Step("side files", Status.CRITICAL, str(exc)))
        trail.result["error"] = str(exc)
        return f"the side files were not all written: {exc}"
    trail.steps.append(Step("verify", Status.OK, f"{overall_metadata(plan.prefix)} present"))
    return None


def list_entries(
    ctx: RunContext, *, bucket: str | None = None, managed: bool = True
) -> tuple[list[BackupEntry], list[str]]:
    """Exports in the bucket and managed backups, newest first, plus what could not be read."""
    project = ctx.target.project
    if not project:
        raise Refused("no project given: set --project (or MLSGW_PROJECT, or [ops] project)")
    name = backup_bucket(project, bucket, ctx.target.backup_bucket)
    return collect_entries(ctx.cloud, project, name, managed=managed)


def bucket_missing(name: str) -> str:
    """What :func:`collect_entries` reports when the backup bucket does not exist."""
    return f"gs://{name} does not exist (no exports)"


def never_set_up(ctx_bucket: str | None, name: str, problems: list[str]) -> bool:
    """Whether no backup was ever set up: no bucket was named (``ctx_bucket``, the flag or
    ``[ops] backup_bucket``), the default one (``name``) is missing, and nothing else was
    found or failed (``problems`` from :func:`collect_entries` with no entries)."""
    return ctx_bucket is None and problems == [bucket_missing(name)]


def not_set_up(name: str) -> str:
    """How a report says that no backup was ever set up (:func:`never_set_up`)."""
    return (
        f"no backups are set up (no bucket gs://{name}, no managed backups):"
        " `mlsgw backup schedule` or `mlsgw backup` starts them"
    )


def collect_entries(
    cloud: Cloud, project: str, name: str, *, managed: bool = True
) -> tuple[list[BackupEntry], list[str]]:
    """Exports in bucket ``name`` and the project's managed backups, newest first, plus what
    could not be read (one line per source)."""
    problems: list[str] = []
    entries: list[BackupEntry] = []
    objects = cloud.objects()
    try:
        listing = objects.list_objects(name)
        manifests = {
            prefix: parse_manifest(objects.read(name, f"{prefix}/{MANIFEST}"))
            for prefix in manifest_prefixes(listing)
        }
        entries.extend(exports_in(name, listing, manifests))
    except NotFound:
        problems.append(bucket_missing(name))
        if not managed:
            return [], problems
    except MlsgwError as exc:
        problems.append(f"exports in gs://{name}: {exc}")
    if managed:
        try:
            entries.extend(managed_entries(cloud.firestore_backups().list_backups(project)))
        except NotFound:
            pass  # no database or location holds any: there are none
        except MlsgwError as exc:
            problems.append(f"managed backups: {exc}")
    return newest_first(entries), problems


def list_table(entries: list[BackupEntry], now: datetime) -> Table:
    """The table ``backup list`` prints."""
    return backups_table(entries, now)
