"""A stand-in of Cloud Logging v2 ``entries:list`` over REST.

Filters support the subset the runbook sends: comparisons joined by ``AND`` on
``resource.type``, ``resource.labels.*``, ``logName``, ``jsonPayload.*`` (``=``),
``severity`` (``=``, ``>=``), ``timestamp`` and ``httpRequest.status`` (comparisons).
Anything else is a 400, so an unexpected filter fails loudly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tests.stand_ins.rest import ApiError, Json, RestServer

SEVERITIES = [
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
]
_TERM = re.compile(r'^\s*([A-Za-z_.]+)\s*(>=|<=|=|<|>)\s*"?([^"]*)"?\s*$')
_Ordered = TypeVar("_Ordered", int, datetime)


def _field(entry: Json, path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(entry: Json, term: str) -> bool:
    match = _TERM.match(term)
    if not match:
        raise ApiError(400, f"stand-in cannot parse filter term {term!r}")
    path, op, expected = match.groups()
    actual = _field(entry, path)
    if path == "severity":
        rank = SEVERITIES.index
        return _compare(op, rank(str(actual or "DEFAULT")), rank(expected))
    elif path == "httpRequest.status":
        if actual is None:
            return False
        return _compare(op, int(actual), int(expected))
    elif path == "timestamp":
        return _compare(
            op,
            datetime.fromisoformat(str(actual).replace("Z", "+00:00")),
            datetime.fromisoformat(expected.replace("Z", "+00:00")),
        )
    elif op == "=":
        return bool(actual == expected)
    else:
        raise ApiError(400, f"stand-in supports only = on {path}")


def _compare(op: str, left: _Ordered, right: _Ordered) -> bool:
    return {
        ">=": left >= right,
        "<=": left <= right,
        ">": left > right,
        "<": left < right,
        "=": left == right,
    }[op]


class LoggingStandIn:
    """Log entries and the ``entries:list`` route."""

    def __init__(self, server: RestServer) -> None:
        self.entries: list[Json] = []
        self.buckets: list[Json] = []
        """Log buckets (``projects.locations.buckets``); see :meth:`add_bucket`."""
        server.route("POST", r"/v2/entries:list", self._list)
        server.route("GET", r"/v2/projects/([^/]+)/locations/-/buckets", self._buckets)

    def add_entry(
        self,
        project: str,
        service: str,
        message: str,
        severity: str = "ERROR",
        age: timedelta = timedelta(minutes=5),
        json_payload: bool = False,
    ) -> None:
        """A Cloud Run log line of ``service``, ``age`` ago."""
        when = datetime.now(UTC) - age
        entry: Json = {
            "logName": f"projects/{project}/logs/run.googleapis.com%2Fstderr",
            "resource": {
                "type": "cloud_run_revision",
                "labels": {
                    "project_id": project,
                    "service_name": service,
                    "location": "europe-west1",
                },
            },
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "severity": severity,
            "insertId": f"id{len(self.entries)}",
        }
        if json_payload:
            entry["jsonPayload"] = {"message": message, "severity": severity}
        else:
            entry["textPayload"] = message
        self.entries.append(entry)

    def add_request(
        self,
        project: str,
        service: str,
        status: int,
        *,
        ip: str = "203.0.113.7",
        path: str = "/",
        user_agent: str = "curl/8.5.0",
        age: timedelta = timedelta(minutes=5),
    ) -> None:
        """A Cloud Run request log entry (``run.googleapis.com/requests``) with ``httpRequest``."""
        self.add_entry(
            project, service, "", severity="WARNING" if status >= 400 else "INFO", age=age
        )
        entry = self.entries[-1]
        del entry["textPayload"]
        entry["logName"] = f"projects/{project}/logs/run.googleapis.com%2Frequests"
        entry["httpRequest"] = {
            "requestMethod": "GET",
            "requestUrl": f"https://{service}-abc.a.run.app{path}",
            "status": status,
            "remoteIp": ip,
            "userAgent": user_agent,
        }

    def add_relay_line(
        self,
        project: str,
        service: str,
        fields: dict[str, Any],
        severity: str = "INFO",
        age: timedelta = timedelta(minutes=5),
    ) -> None:
        """One of the relay's own JSON log lines (``jsonPayload``), as Cloud Run ingests it."""
        self.add_entry(project, service, "", severity=severity, age=age)
        entry = self.entries[-1]
        del entry["textPayload"]
        entry["jsonPayload"] = {"severity": severity, **fields}

    def _list(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        projects = {name.split("/", 1)[1] for name in body.get("resourceNames", [])}
        terms = [t for t in re.split(r"\s+AND\s+", body.get("filter", "")) if t.strip()]
        found = [
            e
            for e in self.entries
            if e["resource"]["labels"]["project_id"] in projects
            and all(_matches(e, t) for t in terms)
        ]
        found.sort(key=lambda e: e["timestamp"], reverse=body.get("orderBy") == "timestamp desc")
        size = int(body.get("pageSize") or 50)
        start = int(body.get("pageToken") or 0)
        page: Json = {"entries": found[start : start + size]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return 200, page

    def add_bucket(
        self, project: str, bucket: str, retention_days: int, location: str = "global"
    ) -> None:
        """A log bucket keeping entries ``retention_days``."""
        self.buckets.append(
            {
                "name": f"projects/{project}/locations/{location}/buckets/{bucket}",
                "retentionDays": retention_days,
                "locked": bucket == "_Required",
            }
        )

    def _buckets(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        prefix = f"projects/{m.group(1)}/"
        return 200, {"buckets": [b for b in self.buckets if b["name"].startswith(prefix)]}
