"""A stand-in of Firestore Admin v1 over REST: operations (``GET …/databases/{db}/operations``),
databases (``GET …/databases/{db}``, point-in-time recovery) and backup schedules
(``GET …/databases/{db}/backupSchedules``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.stand_ins.rest import ApiError, Json, RestServer

_TYPE = "type.googleapis.com/google.firestore.admin.v1.{kind}Metadata"


class FirestoreAdminStandIn:
    """Operations per database and the list route (paged)."""

    def __init__(self, server: RestServer) -> None:
        self.operations: dict[str, list[Json]] = {}
        self.databases: dict[str, Json] = {}
        self.schedules: dict[str, list[Json]] = {}
        db = r"/v1/projects/(?P<project>[^/]+)/databases/(?P<db>[^/]+)"
        server.route("GET", db + "/operations", self._list)
        server.route("GET", db, self._get_database)
        server.route("GET", db + "/backupSchedules", self._list_schedules)

    def add_database(self, project: str, database: str = "(default)", *, pitr: bool = True) -> None:
        """A Native-mode database, with point-in-time recovery on or off."""
        name = f"projects/{project}/databases/{database}"
        self.databases[name] = {
            "name": name,
            "type": 1,
            "locationId": "europe-west1",
            "pointInTimeRecoveryEnablement": 1 if pitr else 2,
            "versionRetentionPeriod": "604800s" if pitr else "3600s",
        }

    def add_schedule(
        self, project: str, database: str = "(default)", *, retention_days: int = 14
    ) -> None:
        """A daily managed backup schedule."""
        parent = f"projects/{project}/databases/{database}"
        schedules = self.schedules.setdefault(parent, [])
        schedules.append(
            {
                "name": f"{parent}/backupSchedules/s{len(schedules) + 1}",
                "retention": f"{retention_days * 86400}s",
                "dailyRecurrence": {},
            }
        )

    def _get_database(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        name = f"projects/{m['project']}/databases/{m['db']}"
        if name not in self.databases:
            raise ApiError(404, f"Database '{name}' does not exist.")
        return 200, self.databases[name]

    def _list_schedules(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        name = f"projects/{m['project']}/databases/{m['db']}"
        if name not in self.databases:
            raise ApiError(404, f"Database '{name}' does not exist.")
        return 200, {"backupSchedules": self.schedules.get(name, [])}

    def add_operation(
        self,
        project: str,
        kind: str = "ExportDocuments",
        state: str = "SUCCESSFUL",
        error: str | None = None,
        age: timedelta = timedelta(hours=2),
        database: str = "(default)",
    ) -> None:
        """A finished (or failed, with ``error``) operation that started ``age`` ago."""
        name = f"projects/{project}/databases/{database}"
        ops = self.operations.setdefault(name, [])
        started = datetime.now(UTC) - age
        op: Json = {
            "name": f"{name}/operations/op{len(ops) + 1:04d}",
            "metadata": {
                "@type": _TYPE.format(kind=kind),
                "startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endTime": (started + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "operationState": state,
            },
            "done": True,
        }
        if error:
            op["error"] = {"code": 13, "message": error}
        else:
            op["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        ops.append(op)

    def _list(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        ops = self.operations.get(f"projects/{m['project']}/databases/{m['db']}", [])
        size = int(query.get("pageSize") or 2)
        start = int(query.get("pageToken") or 0)
        page: Json = {"operations": ops[start : start + size]}
        if start + size < len(ops):
            page["nextPageToken"] = str(start + size)
        return 200, page
