"""The interface the backup and restore runbooks use: Firestore Admin exports, imports,
managed backups, schedules and databases; document counts; Cloud Storage objects.

Adapters (``firestore_backups.py``, ``firestore_documents.py``, ``objects.py``) implement
these Protocols with the official client libraries and raise only :mod:`mlsgw.errors`
exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

DEFAULT_DATABASE = "(default)"


@dataclass(frozen=True)
class Progress:
    """How far a Firestore operation got: documents and bytes (completed of estimated)."""

    documents: int = 0
    documents_estimated: int = 0
    bytes: int = 0
    bytes_estimated: int = 0
    percent: int | None = None
    """Restore and clone operations report a percentage instead of counts."""

    def describe(self) -> str:
        """``1200/1500 documents`` or ``40%``."""
        if self.percent is not None:
            return f"{self.percent}%"
        if self.documents_estimated:
            return f"{self.documents}/{self.documents_estimated} documents"
        return f"{self.documents} documents"


@dataclass(frozen=True)
class OperationStatus:
    """A Firestore Admin long-running operation as last read."""

    name: str
    done: bool
    state: str
    """``PROCESSING``, ``SUCCESSFUL``, ``FAILED``, ``CANCELLED``, ..."""
    progress: Progress
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """Finished without an error."""
        return self.done and self.error is None and self.state not in ("FAILED", "CANCELLED")


ProgressCallback = Callable[[OperationStatus], None]
"""Called with the operation's status at every poll while it runs."""


@dataclass(frozen=True)
class ExportResult:
    """A finished export: where it went and what it holds."""

    operation: OperationStatus
    output_uri_prefix: str
    snapshot_time: datetime | None
    collection_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManagedBackup:
    """A Firestore managed (scheduled) backup."""

    name: str
    """``projects/P/locations/L/backups/ID``."""
    database: str
    snapshot_time: datetime | None
    expire_time: datetime | None
    state: str
    size_bytes: int | None
    document_count: int | None


@dataclass(frozen=True)
class BackupSchedule:
    """A managed backup schedule of a database."""

    name: str
    retention: timedelta
    recurrence: str
    """``daily`` or ``weekly:<DAY>``."""


@dataclass(frozen=True)
class DatabaseInfo:
    """A Firestore database with what restores care about."""

    name: str
    uid: str
    location: str
    pitr_enabled: bool
    earliest_version_time: datetime | None
    version_retention: timedelta | None
    created: datetime | None


@dataclass(frozen=True)
class StoredObject:
    """One Cloud Storage object's metadata."""

    name: str
    size: int
    updated: datetime | None


class FirestoreBackupsApi(Protocol):
    """Firestore Admin v1: exports, imports, managed backups, schedules and databases."""

    def export_documents(
        self,
        database: str,
        output_uri_prefix: str,
        snapshot_time: datetime | None,
        on_progress: ProgressCallback,
    ) -> ExportResult:
        """Export ``database`` (full name) as of ``snapshot_time`` and wait for the operation.

        Raises :class:`mlsgw.errors.OperationFailed` when the operation ends with an error.
        """
        ...

    def import_documents(
        self, database: str, input_uri_prefix: str, on_progress: ProgressCallback
    ) -> OperationStatus:
        """Import an export into ``database`` and wait; ``OperationFailed`` on an error."""
        ...

    def export_operation(self, database: str, output_uri_prefix: str) -> OperationStatus | None:
        """The export operation that wrote ``output_uri_prefix``, while Firestore still lists
        it (its metadata holds the document count), else ``None``."""
        ...

    def get_database(self, name: str) -> DatabaseInfo: ...

    def list_backups(self, project: str) -> list[ManagedBackup]:
        """Managed backups of every location of the project."""
        ...

    def get_backup(self, name: str) -> ManagedBackup: ...

    def list_backup_schedules(self, database: str) -> list[BackupSchedule]: ...

    def create_backup_schedule(self, database: str, retention: timedelta) -> BackupSchedule:
        """A new daily schedule keeping each backup for ``retention``."""
        ...

    def update_backup_schedule(self, name: str, retention: timedelta) -> BackupSchedule:
        """Set the retention of a schedule and make it daily."""
        ...

    def restore_database(
        self, project: str, database_id: str, backup: str, on_progress: ProgressCallback
    ) -> DatabaseInfo:
        """Restore the managed ``backup`` into the new database ``database_id`` and wait."""
        ...

    def clone_database(
        self,
        project: str,
        database_id: str,
        source: str,
        at: datetime,
        on_progress: ProgressCallback,
    ) -> DatabaseInfo:
        """Clone ``source`` (full name) as of ``at`` (PITR) into ``database_id`` and wait."""
        ...

    def delete_database(self, name: str) -> None:
        """Delete the database ``name`` (full name) and wait until it is gone;
        :class:`mlsgw.errors.NotFound` when there is no such database."""
        ...


class FirestoreDocumentsApi(Protocol):
    """Firestore (data plane): what a database holds."""

    def count_documents(
        self, database: str, read_time: datetime | None = None
    ) -> Mapping[str, int]:
        """Documents per top-level collection of ``database`` (full name), each counted by a
        COUNT aggregation on the server; an empty mapping for an empty database. With
        ``read_time``, the database as it was then (within its version retention)."""
        ...


class ObjectStoreApi(Protocol):
    """Cloud Storage objects."""

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """Every object under ``prefix``; :class:`mlsgw.errors.NotFound` without the bucket."""
        ...

    def read(self, bucket: str, name: str) -> bytes | None:
        """The object's bytes, ``None`` when it does not exist."""
        ...

    def write(self, bucket: str, name: str, data: bytes, content_type: str) -> None: ...
