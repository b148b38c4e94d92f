"""A stand-in of Firestore Admin v1 over REST: the operations list
(``GET …/databases/{db}/operations``). Databases, exports, backups and schedules live in
:mod:`tests.stand_ins.firestore_backups`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.stand_ins.rest import Json, RestServer

_TYPE = "type.googleapis.com/google.firestore.admin.v1.{kind}Metadata"


class FirestoreAdminStandIn:
    """Operations per database and the list route (paged)."""

    def __init__(self, server: RestServer) -> None:
        self.operations: dict[str, list[Json]] = {}
        db = r"/v1/projects/(?P<project>[^/]+)/databases/(?P<db>[^/]+)"
        server.route("GET", db + "/operations", self._list)

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
