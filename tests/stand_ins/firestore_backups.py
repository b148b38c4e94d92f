"""A stateful stand-in of Firestore Admin v1 backups and restores over REST.

Routes as ``firestore_admin_v1`` (``transport="rest"``) sends them (``rest_base.py``):

- ``POST …/databases/{db}:exportDocuments`` / ``:importDocuments``: long-running operations
  with ``ExportDocumentsMetadata`` / ``ImportDocumentsMetadata`` (state, ``progressDocuments``
  and ``progressBytes`` as int64 strings) that finish after :attr:`polls_until_done` polls
  of ``GET …/databases/{db}/operations/{id}``. A finished export writes the files Firestore
  writes into the Cloud Storage stand-in (``<prefix>/<last>.overall_export_metadata``,
  ``all_namespaces/all_kinds/…export_metadata`` and ``output-0``); an import needs the
  overall metadata file and writes the exported documents back, keeping those written since:
  each exported collection ends with the larger of its count and the export's (the
  stand-in knows counts, not documents).
- ``GET …/databases/{db}``, ``GET|POST …/backupSchedules``, ``PATCH …/backupSchedules/{id}``,
  ``GET …/locations/{loc}/backups[/{id}]`` (``-`` = every location),
  ``POST …/databases:restore`` and ``POST …/databases:clone`` (``RestoreDatabaseMetadata`` /
  ``CloneDatabaseMetadata`` with ``progressPercentage``; the response is the new Database),
  ``DELETE …/databases/{db}`` (``DeleteDatabaseMetadata``, empty; the database is gone when
  the operation is done, the response is the deleted Database).

A database is a map collection -> document count (enough for what the runbook checks).
Validation mirrors the API: an export's ``snapshotTime`` must be a whole minute in the past
within the version retention (1 h, 7 days with PITR); a missing bucket or export metadata
file is ``INVALID_ARGUMENT``; restore and clone refuse an existing database id; a clone needs
PITR on the source; a schedule's retention is at most 14 weeks, one daily schedule per
database.
"""

from __future__ import annotations

import copy
import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.stand_ins.firestore_admin import FirestoreAdminStandIn
from tests.stand_ins.rest import ApiError, Json, RestServer
from tests.stand_ins.storage import StorageStandIn

_V1 = r"/v1/projects/(?P<project>[^/]+)"
_DB = _V1 + r"/databases/(?P<db>[^/:]+)"
_TYPE = "type.googleapis.com/google.firestore.admin.v1."
_DB_ID = re.compile(r"[a-z][a-z0-9-]{2,61}[a-z0-9]")
BYTES_PER_DOCUMENT = 180
MAX_RETENTION = timedelta(weeks=14)


def ts(moment: datetime) -> str:
    """RFC 3339 with microseconds, as the API writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str) -> datetime:
    """An RFC 3339 timestamp as the API takes it; 400 when it is not one."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"Invalid timestamp: {value!r}") from None


def _seconds(value: str) -> timedelta:
    if not re.fullmatch(r"\d+(\.\d+)?s", value or ""):
        raise ApiError(400, f"Invalid duration: {value!r}")
    return timedelta(seconds=float(value[:-1]))


@dataclass
class DatabaseRecord:
    """One Firestore database: its documents per collection and its settings."""

    project: str
    id: str
    collections: dict[str, int]
    pitr: bool = False
    location: str = "europe-west1"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(days=30))

    @property
    def name(self) -> str:
        return f"projects/{self.project}/databases/{self.id}"

    @property
    def retention(self) -> timedelta:
        return timedelta(days=7) if self.pitr else timedelta(hours=1)


class FirestoreBackupsStandIn:
    """Databases, exports, managed backups and schedules; operations on the shared list."""

    def __init__(
        self, server: RestServer, operations: FirestoreAdminStandIn, storage: StorageStandIn
    ) -> None:
        self.server = server
        self.storage = storage
        self.operations = operations
        self.databases: dict[str, DatabaseRecord] = {}
        self.exports: dict[str, dict[str, int]] = {}
        """Export prefix (``gs://b/p``) -> the documents per collection it holds."""
        self.backups: dict[str, Json] = {}
        self.backup_contents: dict[str, dict[str, int]] = {}
        self.schedules: dict[str, list[Json]] = {}
        self.polls_until_done = 1
        self.on_import: list[Callable[[Json], None]] = []
        """Called with the request body when an import arrives (a test's observation point)."""
        self.fail_imports: list[str] = []
        """Messages: each next import operation fails with one (documents left untouched)."""
        self.fail_restores: list[str] = []
        """Messages: each next restore operation fails with one, leaving the new database
        created but empty (a half-done restore)."""
        self.alter_restores: list[dict[str, int]] = []
        """Collection counts: each next restore or clone that succeeds ends with these set on
        its new database (documents lost or gained on the way)."""
        self._running: dict[str, tuple[Json, Callable[[], Json]]] = {}
        self._polls: dict[str, int] = {}
        self._ids = itertools.count(1)
        r = server.route
        r("POST", _DB + ":exportDocuments", self._export)
        r("POST", _DB + ":importDocuments", self._import)
        r("GET", _DB + r"/operations/(?P<op>[^/:]+)", self._get_operation)
        r("GET", _DB + "/backupSchedules", self._list_schedules)
        r("POST", _DB + "/backupSchedules", self._create_schedule)
        r("PATCH", _DB + r"/backupSchedules/(?P<id>[^/]+)", self._update_schedule)
        r("GET", _DB, self._get_database)
        r("DELETE", _DB, self._delete_database)
        r("GET", _V1 + r"/locations/(?P<loc>[^/]+)/backups", self._list_backups)
        r("GET", _V1 + r"/locations/(?P<loc>[^/]+)/backups/(?P<id>[^/]+)", self._get_backup)
        r("POST", _V1 + "/databases:restore", self._restore)
        r("POST", _V1 + "/databases:clone", self._clone)

    # ---- test hooks ----------------------------------------------------------------------

    def add_database(
        self,
        project: str,
        database: str = "(default)",
        collections: dict[str, int] | None = None,
        pitr: bool = False,
    ) -> DatabaseRecord:
        """A database holding ``collections`` (name -> document count)."""
        record = DatabaseRecord(project, database, dict(collections or {}), pitr)
        with self.server.lock:
            self.databases[record.name] = record
        return record

    def add_schedule(
        self, project: str, database: str = "(default)", *, retention_days: int = 14
    ) -> None:
        """A daily managed backup schedule on an existing database."""
        parent = f"projects/{project}/databases/{database}"
        now = ts(datetime.now(UTC))
        with self.server.lock:
            schedules = self.schedules.setdefault(parent, [])
            schedules.append(
                {
                    "name": f"{parent}/backupSchedules/{uuid.uuid4()}",
                    "createTime": now,
                    "updateTime": now,
                    "retention": f"{retention_days * 86400}s",
                    "dailyRecurrence": {},
                }
            )

    def database(self, project: str, database: str = "(default)") -> DatabaseRecord | None:
        """The database's record, or ``None``."""
        return self.databases.get(f"projects/{project}/databases/{database}")

    def add_backup(
        self,
        project: str,
        database: str = "(default)",
        age: timedelta = timedelta(hours=3),
        collections: dict[str, int] | None = None,
        location: str = "europe-west1",
        state: str = "READY",
    ) -> str:
        """A managed backup taken ``age`` ago; its name."""
        source = self.database(project, database)
        if collections is None:
            collections = source.collections if source else {}
        contents = dict(collections)
        name = f"projects/{project}/locations/{location}/backups/{uuid.uuid4()}"
        snapshot = datetime.now(UTC) - age
        documents = sum(contents.values())
        self.backups[name] = {
            "name": name,
            "database": f"projects/{project}/databases/{database}",
            "databaseUid": source.uid if source else str(uuid.uuid4()),
            "snapshotTime": ts(snapshot),
            "expireTime": ts(snapshot + timedelta(days=7)),
            "stats": {
                "sizeBytes": str(documents * BYTES_PER_DOCUMENT),
                "documentCount": str(documents),
                "indexCount": "4",
            },
            "state": state,
        }
        self.backup_contents[name] = contents
        return name

    def add_export(
        self, bucket: str, prefix: str, collections: dict[str, int], when: datetime | None = None
    ) -> str:
        """An export written earlier (by anyone): its files in the bucket; the gs:// prefix."""
        uri = f"gs://{bucket}/{prefix}"
        self._write_export_files(uri, collections)
        self.exports[uri] = dict(collections)
        return uri

    # ---- model ---------------------------------------------------------------------------

    def _db(self, m: re.Match[str]) -> DatabaseRecord:
        record = self.databases.get(f"projects/{m['project']}/databases/{m['db']}")
        if record is None:
            raise ApiError(404, f"Project '{m['project']}' or database '{m['db']}' does not exist.")
        return record

    def _database_json(self, record: DatabaseRecord) -> Json:
        now = datetime.now(UTC)
        return {
            "name": record.name,
            "uid": record.uid,
            "createTime": ts(record.created),
            "locationId": record.location,
            "type": "FIRESTORE_NATIVE",
            "concurrencyMode": "PESSIMISTIC",
            "versionRetentionPeriod": f"{int(record.retention.total_seconds())}s",
            "earliestVersionTime": ts(max(record.created, now - record.retention)),
            "pointInTimeRecoveryEnablement": "POINT_IN_TIME_RECOVERY_ENABLED"
            if record.pitr
            else "POINT_IN_TIME_RECOVERY_DISABLED",
            "deleteProtectionState": "DELETE_PROTECTION_DISABLED",
        }

    def _start(self, database: str, metadata: Json, finish: Callable[[], Json]) -> Json:
        """A new operation on ``database``; ``finish`` runs when it completes and returns
        ``{"response": …}`` or ``{"error": …}`` plus metadata updates under ``"metadata"``."""
        name = f"{database}/operations/{uuid.uuid4().hex[:12]}"
        op: Json = {"name": name, "done": False, "metadata": metadata}
        with self.server.lock:
            self.operations.operations.setdefault(database, []).append(op)
            self._running[name] = (op, finish)
            if self.polls_until_done <= 0:
                self._complete(name)
        return copy.deepcopy(op)

    def _complete(self, name: str) -> None:
        op, finish = self._running.pop(name)
        outcome = finish()
        op["metadata"].update(outcome.pop("metadata", {}))
        if "startTime" in op["metadata"]:  # DeleteDatabaseMetadata has no times at all
            op["metadata"]["endTime"] = ts(datetime.now(UTC))
        op.update(outcome, done=True)

    def _write_export_files(self, uri: str, collections: dict[str, int]) -> None:
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        last = prefix.rstrip("/").rsplit("/", 1)[-1]
        documents = sum(collections.values())
        kinds = f"{prefix}/all_namespaces/all_kinds"
        self.storage.put(bucket, f"{prefix}/{last}.overall_export_metadata", b"\x0a\x04meta" * 8)
        self.storage.put(
            bucket, f"{kinds}/all_namespaces_all_kinds.export_metadata", b"\x0a\x04kind" * 16
        )
        self.storage.put(bucket, f"{kinds}/output-0", b"\x00" * (documents * BYTES_PER_DOCUMENT))

    # ---- routes --------------------------------------------------------------------------

    def _export(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        record = self._db(m)
        uri = str(body.get("outputUriPrefix", ""))
        bucket = uri.removeprefix("gs://").partition("/")[0]
        if not uri.startswith("gs://") or not bucket:
            raise ApiError(400, f"Invalid outputUriPrefix: {uri!r}")
        if bucket not in self.storage.buckets:
            raise ApiError(400, f"Bucket {bucket} does not exist.")
        now = datetime.now(UTC)
        snapshot = None
        if body.get("snapshotTime"):
            snapshot = parse_ts(body["snapshotTime"])
            if snapshot.second or snapshot.microsecond:
                raise ApiError(400, "snapshot_time must be rounded to the minute.")
            if snapshot >= now or snapshot < now - record.retention:
                raise ApiError(
                    400,
                    "snapshot_time must be in the past and not older than earliestVersionTime.",
                )
        contents = dict(record.collections)
        documents, size = sum(contents.values()), sum(contents.values()) * BYTES_PER_DOCUMENT
        metadata: Json = {
            "@type": _TYPE + "ExportDocumentsMetadata",
            "startTime": ts(now),
            "operationState": "PROCESSING",
            "progressDocuments": {"estimatedWork": str(documents)},
            "progressBytes": {"estimatedWork": str(size)},
            "outputUriPrefix": uri,
        }
        if snapshot is not None:
            metadata["snapshotTime"] = ts(snapshot)

        def finish() -> Json:
            self._write_export_files(uri, contents)
            self.exports[uri] = contents
            return {
                "metadata": {
                    "operationState": "SUCCESSFUL",
                    "progressDocuments": {
                        "estimatedWork": str(documents),
                        "completedWork": str(documents),
                    },
                    "progressBytes": {"estimatedWork": str(size), "completedWork": str(size)},
                },
                "response": {"@type": _TYPE + "ExportDocumentsResponse", "outputUriPrefix": uri},
            }

        return 200, self._start(record.name, metadata, finish)

    def _import(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        record = self._db(m)
        uri = str(body.get("inputUriPrefix", "")).rstrip("/")
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        last = prefix.rsplit("/", 1)[-1]
        if self.storage.get(bucket, f"{prefix}/{last}.overall_export_metadata") is None:
            raise ApiError(
                400,
                f"Google Cloud Storage file does not exist: /{bucket}/{prefix}/"
                f"{last}.overall_export_metadata",
            )
        for hook in list(self.on_import):
            hook(body)
        contents = dict(self.exports.get(uri, {}))
        documents = sum(contents.values())
        failure = self.fail_imports.pop(0) if self.fail_imports else None
        metadata: Json = {
            "@type": _TYPE + "ImportDocumentsMetadata",
            "startTime": ts(datetime.now(UTC)),
            "operationState": "PROCESSING",
            "progressDocuments": {"estimatedWork": str(documents)},
            "inputUriPrefix": uri,
        }

        def finish() -> Json:
            if failure is not None:
                return {
                    "metadata": {"operationState": "FAILED"},
                    "error": {"code": 13, "message": failure},
                }
            for name, n in contents.items():
                record.collections[name] = max(record.collections.get(name, 0), n)
            return {
                "metadata": {
                    "operationState": "SUCCESSFUL",
                    "progressDocuments": {
                        "estimatedWork": str(documents),
                        "completedWork": str(documents),
                    },
                },
                "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
            }

        return 200, self._start(record.name, metadata, finish)

    def _get_operation(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        name = f"projects/{m['project']}/databases/{m['db']}/operations/{m['op']}"
        for op in self.operations.operations.get(name.rsplit("/operations/", 1)[0], []):
            if op["name"] == name:
                self._polls[name] = self._polls.get(name, 0) + 1
                if name in self._running and self._polls[name] >= self.polls_until_done:
                    self._complete(name)
                return 200, copy.deepcopy(op)
        raise ApiError(404, f"Operation {name} does not exist.")

    def _get_database(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        return 200, self._database_json(self._db(m))

    def _delete_database(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._db(m)
        metadata: Json = {"@type": _TYPE + "DeleteDatabaseMetadata"}

        def finish() -> Json:
            self.databases.pop(record.name, None)
            self.schedules.pop(record.name, None)
            return {"response": {"@type": _TYPE + "Database", **self._database_json(record)}}

        return 200, self._start(record.name, metadata, finish)

    def _list_schedules(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._db(m)
        return 200, {"backupSchedules": copy.deepcopy(self.schedules.get(record.name, []))}

    def _check_schedule(self, body: Json) -> None:
        if _seconds(str(body.get("retention", ""))) > MAX_RETENTION:
            raise ApiError(400, "retention must be at most 14 weeks.")
        if "dailyRecurrence" not in body and "weeklyRecurrence" not in body:
            raise ApiError(400, "A recurrence (daily or weekly) is required.")

    def _create_schedule(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._db(m)
        self._check_schedule(body)
        existing = self.schedules.setdefault(record.name, [])
        if "dailyRecurrence" in body and any("dailyRecurrence" in s for s in existing):
            raise ApiError(409, "A daily backup schedule already exists for this database.")
        now = ts(datetime.now(UTC))
        schedule: Json = {
            "name": f"{record.name}/backupSchedules/{uuid.uuid4()}",
            "createTime": now,
            "updateTime": now,
            "retention": body["retention"],
            **{k: body[k] for k in ("dailyRecurrence", "weeklyRecurrence") if k in body},
        }
        existing.append(schedule)
        return 200, copy.deepcopy(schedule)

    def _update_schedule(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._db(m)
        name = f"{record.name}/backupSchedules/{m['id']}"
        schedule = next((s for s in self.schedules.get(record.name, []) if s["name"] == name), None)
        if schedule is None:
            raise ApiError(404, f"Backup schedule {name} does not exist.")
        self._check_schedule({**schedule, **body})
        for path in (query.get("updateMask") or "").split(","):
            key = re.sub(r"_(\w)", lambda g: g.group(1).upper(), path.strip())
            if key in ("dailyRecurrence", "weeklyRecurrence"):
                schedule.pop("dailyRecurrence", None)
                schedule.pop("weeklyRecurrence", None)
            if key in body:
                schedule[key] = body[key]
        schedule["updateTime"] = ts(datetime.now(UTC))
        return 200, copy.deepcopy(schedule)

    def _list_backups(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        prefix = f"projects/{m['project']}/locations/"
        wanted = [
            b
            for name, b in self.backups.items()
            if name.startswith(prefix)
            and (m["loc"] == "-" or name.startswith(f"{prefix}{m['loc']}/"))
        ]
        return 200, {"backups": copy.deepcopy(wanted)}

    def _get_backup(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        name = f"projects/{m['project']}/locations/{m['loc']}/backups/{m['id']}"
        if name not in self.backups:
            raise ApiError(404, f"Backup {name} does not exist.")
        return 200, copy.deepcopy(self.backups[name])

    def _new_database(self, project: str, database_id: str) -> str:
        if not _DB_ID.fullmatch(database_id or ""):
            raise ApiError(
                400, f"Invalid database id {database_id!r}: 4-63 of [a-z0-9-], starting a letter."
            )
        name = f"projects/{project}/databases/{database_id}"
        if name in self.databases:
            raise ApiError(409, f"Database {name} already exists.")
        return name

    def _restore_op(
        self, project: str, database_id: str, kind: str, extra: Json, contents: dict[str, int]
    ) -> Json:
        name = f"projects/{project}/databases/{database_id}"
        metadata: Json = {
            "@type": _TYPE + kind,
            "startTime": ts(datetime.now(UTC)),
            "operationState": "PROCESSING",
            "database": name,
            "progressPercentage": {"estimatedWork": "100", "completedWork": "0"},
            **extra,
        }

        failure = self.fail_restores.pop(0) if self.fail_restores else None
        altered = self.alter_restores.pop(0) if self.alter_restores and not failure else {}

        def finish() -> Json:
            record = self.add_database(project, database_id, {} if failure else contents)
            record.collections.update(altered)
            record.created = datetime.now(UTC)
            if failure is not None:
                return {
                    "metadata": {"operationState": "FAILED"},
                    "error": {"code": 13, "message": failure},
                }
            response = {"@type": _TYPE + "Database", **self._database_json(record)}
            return {
                "metadata": {
                    "operationState": "SUCCESSFUL",
                    "progressPercentage": {"estimatedWork": "100", "completedWork": "100"},
                },
                "response": response,
            }

        return self._start(name, metadata, finish)

    def _restore(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        self._new_database(m["project"], body.get("databaseId", ""))
        backup = self.backups.get(str(body.get("backup", "")))
        if backup is None:
            raise ApiError(404, f"Backup {body.get('backup')} does not exist.")
        if backup["state"] != "READY":
            raise ApiError(400, f"Backup {backup['name']} is not READY ({backup['state']}).")
        contents = self.backup_contents.get(backup["name"], {})
        op = self._restore_op(
            m["project"],
            body["databaseId"],
            "RestoreDatabaseMetadata",
            {"backup": backup["name"]},
            contents,
        )
        return 200, op

    def _clone(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        self._new_database(m["project"], body.get("databaseId", ""))
        snapshot = body.get("pitrSnapshot") or {}
        source = self.databases.get(str(snapshot.get("database", "")))
        if source is None:
            raise ApiError(404, f"Database {snapshot.get('database')} does not exist.")
        at = parse_ts(str(snapshot.get("snapshotTime", "")))
        now = datetime.now(UTC)
        if not source.pitr:
            raise ApiError(400, f"Point-in-time recovery is not enabled on {source.name}.")
        if at.second or at.microsecond:
            raise ApiError(400, "snapshot_time must be a whole minute.")
        if at >= now or at < now - source.retention:
            raise ApiError(400, "snapshot_time must be within the version retention period.")
        op = self._restore_op(
            m["project"],
            body["databaseId"],
            "CloneDatabaseMetadata",
            {"pitrSnapshot": snapshot},
            dict(source.collections),
        )
        return 200, op
