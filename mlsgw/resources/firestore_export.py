"""A Firestore export into a Cloud Storage prefix as a runbook resource: reading it checks
the bucket and the database, applying it runs the export operation to the end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlsgw.errors import NotFound, Refused
from mlsgw.gcp.backup_api import (
    DatabaseInfo,
    ExportResult,
    FirestoreBackupsApi,
    ObjectStoreApi,
    ProgressCallback,
)


@dataclass(frozen=True)
class ExportState:
    """The export prefix and the database, as read; :attr:`result` once exported."""

    database: DatabaseInfo
    objects: int
    """Objects already under the prefix (an export goes only into an empty one)."""
    result: ExportResult | None = None


@dataclass(frozen=True)
class ExportRequest:
    """Export the whole database as of ``snapshot`` (a whole minute in the past)."""

    snapshot: datetime


class FirestoreExport:
    """:class:`~mlsgw.resources.base.Resource`: ``gs://bucket/prefix`` filled by an export of
    ``database``."""

    key = "export"
    kind = "Firestore export"

    def __init__(
        self,
        firestore: FirestoreBackupsApi,
        objects: ObjectStoreApi,
        database: str,
        bucket: str,
        prefix: str,
        on_progress: ProgressCallback,
    ) -> None:
        self.firestore = firestore
        self.objects = objects
        self.database = database
        self.bucket = bucket
        self.prefix = prefix
        self.name = f"gs://{bucket}/{prefix}"
        self.on_progress = on_progress

    def read(self) -> ExportState:
        """The bucket must exist; the database is read for its version window."""
        try:
            existing = self.objects.list_objects(self.bucket, self.prefix + "/")
        except NotFound as exc:
            raise Refused(
                f"the backup bucket gs://{self.bucket} does not exist ({exc}); create it with "
                f"`gcloud storage buckets create gs://{self.bucket} --location=REGION` "
                "or give --bucket"
            ) from exc
        return ExportState(self.firestore.get_database(self.database), len(existing))

    def summary(self, state: ExportState) -> object:
        """Where the export goes and, once done, what it holds."""
        if state.result is None:
            return {"export": self.name, "objects": state.objects}
        progress = state.result.operation.progress
        return {
            "export": state.result.output_uri_prefix,
            "operation": state.result.operation.name,
            "documents": progress.documents,
            "bytes": progress.bytes,
            "snapshot_time": (
                state.result.snapshot_time.isoformat() if state.result.snapshot_time else None
            ),
        }

    def validate(self, state: ExportState, change: ExportRequest) -> str:
        """The prefix is free and the snapshot is inside the database's version window
        (Firestore has no dry run for exports)."""
        if state.objects:
            raise Refused(f"{self.name} already holds {state.objects} object(s); not overwriting")
        earliest = state.database.earliest_version_time
        if earliest and change.snapshot < earliest:
            raise Refused(
                f"snapshot {change.snapshot:%H:%M} is older than the database's earliest "
                f"version ({earliest:%H:%M}); run again"
            )
        return (
            f"gs://{self.bucket} exists and {self.prefix}/ is free; {state.database.name} "
            f"({state.database.location}) keeps the {change.snapshot:%H:%M} UTC snapshot"
        )

    def apply(self, state: ExportState, change: ExportRequest) -> ExportState:
        """Run the export to the end (progress reported); ``OperationFailed`` on an error."""
        self.validate(state, change)
        result = self.firestore.export_documents(
            self.database, self.name, change.snapshot, self.on_progress
        )
        return ExportState(state.database, state.objects, result)
