"""Cloud Logging v2 adapter (``google-cloud-logging``, HTTP/JSON transport): log entries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from google.cloud import logging as gcl

from mlsgw.gcp.base import HttpRequestInfo, LogBucket, LogEntry
from mlsgw.gcp.errors import vendor_errors


def _message(payload: Any) -> str:
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        for key in ("message", "msg", "textPayload"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
        return json.dumps(payload, sort_keys=True, default=str)
    return str(payload)


def _http(raw: Any) -> HttpRequestInfo | None:
    if not isinstance(raw, dict):
        return None
    try:
        status = int(raw.get("status") or 0)
    except (TypeError, ValueError):
        status = 0
    return HttpRequestInfo(
        status=status,
        method=str(raw.get("requestMethod") or ""),
        url=str(raw.get("requestUrl") or ""),
        remote_ip=str(raw.get("remoteIp") or ""),
        user_agent=str(raw.get("userAgent") or ""),
    )


class LogsAdapter:
    """:class:`mlsgw.gcp.base.LogsApi` over ``google.cloud.logging.Client``; every request
    waits at most ``timeout`` seconds to connect and as long for each read."""

    def __init__(self, client: gcl.Client, timeout: float) -> None:
        self._client = client
        # The client's own methods take no timeout and its connection waits 60 s by default:
        # bind the target's timeout into the one method every request goes through.
        connection = client._connection
        bounded = partial(connection.api_request, timeout=timeout)
        connection.api_request = bounded  # type: ignore[method-assign]

    def list_entries(self, project: str, filter_: str, limit: int) -> list[LogEntry]:
        """Newest entries matching ``filter_``, at most ``limit``."""
        with vendor_errors(f"read logs of project {project}", "logging.logEntries.list"):
            raws = list(
                self._client.list_entries(  # type: ignore[no-untyped-call]
                    resource_names=[f"projects/{project}"],
                    filter_=filter_,
                    order_by=gcl.DESCENDING,
                    page_size=min(limit, 1000),
                    max_results=limit,
                )
            )
        return [
            LogEntry(
                time=raw.timestamp if isinstance(raw.timestamp, datetime) else None,
                severity=str(raw.severity or "DEFAULT"),
                message=_message(raw.payload),
                fields=dict(raw.payload) if isinstance(raw.payload, dict) else {},
                http=_http(raw.http_request),
            )
            for raw in raws
        ]

    def export_entries(self, project: str, filter_: str, limit: int) -> list[Mapping[str, object]]:
        """Whole entries (``to_api_repr``), oldest first, at most ``limit``."""
        with vendor_errors(f"read logs of project {project}", "logging.logEntries.list"):
            raws = list(
                self._client.list_entries(  # type: ignore[no-untyped-call]
                    resource_names=[f"projects/{project}"],
                    filter_=filter_,
                    order_by=gcl.ASCENDING,
                    page_size=min(limit, 1000),
                    max_results=limit,
                )
            )
        return [dict(raw.to_api_repr()) for raw in raws]

    def list_buckets(self, project: str) -> list[LogBucket]:
        """``projects.locations.buckets.list`` for every location, through the client's own
        HTTP connection (the handwritten client has no bucket methods)."""
        buckets: list[LogBucket] = []
        token: str | None = None
        with vendor_errors(f"list log buckets of project {project}", "logging.buckets.list"):
            while True:
                params = {"pageToken": token} if token else {}
                page = self._client._connection.api_request(  # type: ignore[no-untyped-call]
                    method="GET",
                    path=f"/projects/{project}/locations/-/buckets",
                    query_params=params,
                )
                for raw in page.get("buckets", []):
                    buckets.append(
                        LogBucket(
                            name=str(raw.get("name", "")),
                            retention_days=int(raw.get("retentionDays", 0)),
                            locked=bool(raw.get("locked", False)),
                        )
                    )
                token = page.get("nextPageToken")
                if not token:
                    return buckets
