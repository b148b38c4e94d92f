"""Firestore Admin v1 adapter for backups and restores (``firestore_admin_v1``): exports,
imports, managed backups, backup schedules, restore and PITR clone into a new database, and
deleting a database (the restore drill's scratch database)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as api
from google.api_core import operation as lro
from google.cloud import firestore_admin_v1
from google.cloud.firestore_admin_v1.types import backup as backup_types
from google.cloud.firestore_admin_v1.types import database as database_types
from google.cloud.firestore_admin_v1.types import firestore_admin as requests
from google.cloud.firestore_admin_v1.types import operation as operation_types
from google.cloud.firestore_admin_v1.types import schedule as schedule_types
from google.cloud.firestore_admin_v1.types import snapshot
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from mlsgw import errors
from mlsgw.gcp.backup_api import (
    BackupSchedule,
    DatabaseInfo,
    ExportResult,
    ManagedBackup,
    OperationStatus,
    Progress,
    ProgressCallback,
)
from mlsgw.gcp.errors import vendor_errors

OPERATION_TIMEOUT = 6 * 3600.0
"""Seconds to wait for an export, import or restore (large databases take hours)."""
_MAX_PAGES = 20
FIRST_POLL = 0.05
MAX_POLL = 10.0

_PITR_ON = database_types.Database.PointInTimeRecoveryEnablement.POINT_IN_TIME_RECOVERY_ENABLED


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.timestamp() > 0 else None


def _progress(metadata: Any) -> Progress:
    fields = type(metadata).meta.fields if metadata is not None else {}
    if "progress_documents" not in fields and "progress_percentage" not in fields:
        return Progress()  # e.g. DeleteDatabaseMetadata, which is empty
    if "progress_percentage" in fields:
        done = metadata.progress_percentage
        return Progress(percent=int(done.completed_work) if done else 0)
    docs, size = metadata.progress_documents, metadata.progress_bytes
    return Progress(
        documents=int(docs.completed_work),
        documents_estimated=int(docs.estimated_work),
        bytes=int(size.completed_work),
        bytes_estimated=int(size.estimated_work),
    )


def _status(operation: lro.Operation) -> OperationStatus:
    raw = operation.operation
    metadata = operation.metadata
    has_state = metadata is not None and "operation_state" in type(metadata).meta.fields
    state = metadata.operation_state.name if has_state else ""
    error = f"code {raw.error.code}: {raw.error.message}" if raw.error.code else None
    if not state or state == "OPERATION_STATE_UNSPECIFIED":
        state = "FAILED" if error else ("SUCCESSFUL" if raw.done else "PROCESSING")
    return OperationStatus(raw.name, bool(raw.done), state, _progress(metadata), error)


def _export_status(raw: operations_pb2.Operation, prefix: str) -> OperationStatus | None:
    """The status of ``raw`` when it is the export to ``prefix``."""
    if not raw.metadata.type_url.endswith("ExportDocumentsMetadata"):
        return None
    metadata = operation_types.ExportDocumentsMetadata.deserialize(raw.metadata.value)
    if metadata.output_uri_prefix.rstrip("/") != prefix:
        return None
    error = f"code {raw.error.code}: {raw.error.message}" if raw.error.code else None
    return OperationStatus(
        raw.name, bool(raw.done), metadata.operation_state.name, _progress(metadata), error
    )


def _backup(raw: backup_types.Backup) -> ManagedBackup:
    stats = raw.stats
    has_stats = "stats" in raw
    return ManagedBackup(
        name=raw.name,
        database=raw.database,
        snapshot_time=_time(raw.snapshot_time),
        expire_time=_time(raw.expire_time),
        state=raw.state.name,
        size_bytes=int(stats.size_bytes) if has_stats else None,
        document_count=int(stats.document_count) if has_stats else None,
    )


def _schedule(raw: schedule_types.BackupSchedule) -> BackupSchedule:
    if "weekly_recurrence" in raw:
        recurrence = f"weekly:{raw.weekly_recurrence.day.name}"
    else:
        recurrence = "daily"
    retention = raw.retention if isinstance(raw.retention, timedelta) else timedelta()
    return BackupSchedule(raw.name, retention, recurrence)


def _database(raw: database_types.Database) -> DatabaseInfo:
    retention = raw.version_retention_period
    return DatabaseInfo(
        name=raw.name,
        uid=raw.uid,
        location=raw.location_id,
        pitr_enabled=raw.point_in_time_recovery_enablement == _PITR_ON,
        earliest_version_time=_time(raw.earliest_version_time),
        version_retention=retention if isinstance(retention, timedelta) and retention else None,
        created=_time(raw.create_time),
    )


class FirestoreBackupsAdapter:
    """:class:`mlsgw.gcp.backup_api.FirestoreBackupsApi` over ``FirestoreAdminClient``."""

    def __init__(
        self,
        client: firestore_admin_v1.FirestoreAdminClient,
        *,
        timeout: float,
        operation_timeout: float = OPERATION_TIMEOUT,
    ) -> None:
        self._client = client
        self._endpoint = client.api_endpoint
        self._timeout = timeout
        self._operation_timeout = operation_timeout

    def _errors(self, what: str, permission: str | None = None) -> AbstractContextManager[None]:
        """:func:`vendor_errors` naming this client's endpoint."""
        return vendor_errors(what, permission, self._endpoint)

    def _wait(
        self, operation: lro.Operation, what: str, on_progress: ProgressCallback
    ) -> tuple[Any, OperationStatus]:
        """Poll until done (reporting progress), then the result; errors become ours."""
        deadline = time.monotonic() + self._operation_timeout
        delay = FIRST_POLL
        with self._errors(f"follow the operation to {what}"):
            while not operation.done(retry=None):  # type: ignore[no-untyped-call]
                on_progress(_status(operation))
                if time.monotonic() > deadline:
                    raise errors.Unavailable(
                        f"the operation to {what} was still running after "
                        f"{self._operation_timeout:.0f} s ({operation.operation.name}); "
                        "it goes on server-side: follow it with "
                        f"`gcloud firestore operations describe {operation.operation.name}`"
                    )
                time.sleep(delay)
                delay = min(delay * 2, MAX_POLL)
        status = _status(operation)
        on_progress(status)
        try:
            result = operation.result(timeout=self._timeout, retry=None)  # type: ignore[no-untyped-call]
        except api.GoogleAPICallError as exc:
            raise errors.OperationFailed(
                f"the operation to {what} failed ({status.name}): {exc.message or exc}"
            ) from exc
        return result, status

    def export_documents(
        self,
        database: str,
        output_uri_prefix: str,
        snapshot_time: datetime | None,
        on_progress: ProgressCallback,
    ) -> ExportResult:
        """Start the export and follow it to the end."""
        request = requests.ExportDocumentsRequest(
            name=database, output_uri_prefix=output_uri_prefix, snapshot_time=snapshot_time
        )
        what = f"export {database} to {output_uri_prefix}"
        with self._errors(what, "datastore.databases.export"):
            operation = self._client.export_documents(request=request, timeout=self._timeout)
        response, status = self._wait(operation, what, on_progress)
        metadata = operation.metadata
        return ExportResult(
            operation=status,
            output_uri_prefix=response.output_uri_prefix or output_uri_prefix,
            snapshot_time=_time(metadata.snapshot_time) if metadata else snapshot_time,
            collection_ids=tuple(metadata.collection_ids) if metadata else (),
        )

    def import_documents(
        self, database: str, input_uri_prefix: str, on_progress: ProgressCallback
    ) -> OperationStatus:
        """Start the import and follow it to the end."""
        request = requests.ImportDocumentsRequest(name=database, input_uri_prefix=input_uri_prefix)
        what = f"import {input_uri_prefix} into {database}"
        with self._errors(what, "datastore.databases.import"):
            operation = self._client.import_documents(request=request, timeout=self._timeout)
        return self._wait(operation, what, on_progress)[1]

    def export_operation(self, database: str, output_uri_prefix: str) -> OperationStatus | None:
        """Search the database's listed operations for the export to ``output_uri_prefix``."""
        wanted = output_uri_prefix.rstrip("/")
        token = ""
        with self._errors(f"list Firestore operations of {database}", "datastore.operations.list"):
            for _ in range(_MAX_PAGES):
                request = operations_pb2.ListOperationsRequest(name=database, page_token=token)
                page = self._client.list_operations(request=request, timeout=self._timeout)
                for raw in page.operations:
                    found = _export_status(raw, wanted)
                    if found is not None:
                        return found
                token = page.next_page_token
                if not token:
                    return None
        return None

    def get_database(self, name: str) -> DatabaseInfo:
        """Read the database."""
        what = f"read the Firestore database {name}"
        with self._errors(what, "datastore.databases.getMetadata"):
            return _database(self._client.get_database(name=name, timeout=self._timeout))

    def list_backups(self, project: str) -> list[ManagedBackup]:
        """Managed backups in every location (``locations/-``)."""
        parent = f"projects/{project}/locations/-"
        with self._errors(f"list Firestore backups of {project}", "datastore.backups.list"):
            response = self._client.list_backups(parent=parent, timeout=self._timeout)
        return [_backup(b) for b in response.backups]

    def get_backup(self, name: str) -> ManagedBackup:
        """Read one managed backup."""
        with self._errors(f"read the Firestore backup {name}", "datastore.backups.get"):
            return _backup(self._client.get_backup(name=name, timeout=self._timeout))

    def list_backup_schedules(self, database: str) -> list[BackupSchedule]:
        """The database's backup schedules."""
        what = f"list the backup schedules of {database}"
        with self._errors(what, "datastore.backupSchedules.list"):
            response = self._client.list_backup_schedules(parent=database, timeout=self._timeout)
        return [_schedule(s) for s in response.backup_schedules]

    def create_backup_schedule(self, database: str, retention: timedelta) -> BackupSchedule:
        """A new daily schedule."""
        schedule = schedule_types.BackupSchedule(
            retention=retention, daily_recurrence=schedule_types.DailyRecurrence()
        )
        what = f"create a backup schedule for {database}"
        with self._errors(what, "datastore.backupSchedules.create"):
            created = self._client.create_backup_schedule(
                parent=database, backup_schedule=schedule, timeout=self._timeout
            )
        return _schedule(created)

    def update_backup_schedule(self, name: str, retention: timedelta) -> BackupSchedule:
        """Daily, with the new retention."""
        schedule = schedule_types.BackupSchedule(
            name=name, retention=retention, daily_recurrence=schedule_types.DailyRecurrence()
        )
        mask = field_mask_pb2.FieldMask(paths=["retention", "daily_recurrence"])
        what = f"update the backup schedule {name}"
        with self._errors(what, "datastore.backupSchedules.update"):
            updated = self._client.update_backup_schedule(
                backup_schedule=schedule, update_mask=mask, timeout=self._timeout
            )
        return _schedule(updated)

    def restore_database(
        self, project: str, database_id: str, backup: str, on_progress: ProgressCallback
    ) -> DatabaseInfo:
        """Restore ``backup`` into a new database and follow the operation."""
        request = requests.RestoreDatabaseRequest(
            parent=f"projects/{project}", database_id=database_id, backup=backup
        )
        what = f"restore {backup} into the new database {database_id}"
        with self._errors(what, "datastore.backups.restoreDatabase"):
            operation = self._client.restore_database(request=request, timeout=self._timeout)
        result, _ = self._wait(operation, what, on_progress)
        return _database(result)

    def clone_database(
        self,
        project: str,
        database_id: str,
        source: str,
        at: datetime,
        on_progress: ProgressCallback,
    ) -> DatabaseInfo:
        """Clone ``source`` as of ``at`` into a new database and follow the operation."""
        request = requests.CloneDatabaseRequest(
            parent=f"projects/{project}",
            database_id=database_id,
            pitr_snapshot=snapshot.PitrSnapshot(database=source, snapshot_time=at),
        )
        what = f"clone {source} as of {at:%Y-%m-%dT%H:%M:%SZ} into the new database {database_id}"
        with self._errors(what, "datastore.databases.clone"):
            operation = self._client.clone_database(request=request, timeout=self._timeout)
        result, _ = self._wait(operation, what, on_progress)
        return _database(result)

    def delete_database(self, name: str) -> None:
        """Delete ``name`` and follow the operation until the database is gone."""
        what = f"delete the Firestore database {name}"
        with self._errors(what, "datastore.databases.delete"):
            operation = self._client.delete_database(name=name, timeout=self._timeout)
        self._wait(operation, what, lambda _: None)
