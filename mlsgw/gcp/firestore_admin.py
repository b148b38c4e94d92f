"""Firestore Admin v1 adapter (``google-cloud-firestore``'s ``firestore_admin_v1``): operations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore_admin_v1
from google.longrunning import operations_pb2
from google.protobuf import json_format

from mlsgw.gcp.base import FirestoreOperation
from mlsgw.gcp.errors import vendor_errors

_MAX_PAGES = 20
_PITR_ENABLED = (
    firestore_admin_v1.types.Database.PointInTimeRecoveryEnablement.POINT_IN_TIME_RECOVERY_ENABLED
)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def operation_of(raw: operations_pb2.Operation) -> FirestoreOperation:
    """Our view of a long-running operation; metadata decoded from its ``Any`` by type."""
    metadata: dict[str, Any] = {}
    if raw.HasField("metadata"):
        try:
            metadata = json_format.MessageToDict(raw.metadata)
        except (TypeError, KeyError, json_format.Error):
            metadata = {"@type": raw.metadata.type_url}
    kind = str(metadata.get("@type", "")).rsplit(".", 1)[-1].removesuffix("Metadata")
    error = None
    if raw.HasField("error") and raw.error.code:
        error = f"code {raw.error.code}: {raw.error.message}"
    state = str(metadata.get("operationState") or metadata.get("state") or "")
    if not state:
        state = "FAILED" if error else ("SUCCESSFUL" if raw.done else "PROCESSING")
    return FirestoreOperation(
        name=raw.name,
        kind=kind or "Operation",
        state=state,
        started=_timestamp(metadata.get("startTime")),
        ended=_timestamp(metadata.get("endTime")),
        error=error,
    )


class FirestoreAdminAdapter:
    """:class:`mlsgw.gcp.base.FirestoreAdminApi` over ``FirestoreAdminClient``."""

    def __init__(self, client: firestore_admin_v1.FirestoreAdminClient, *, timeout: float) -> None:
        self._client = client
        self._endpoint = client.api_endpoint
        self._timeout = timeout

    def list_operations(
        self, project: str, database: str = "(default)"
    ) -> list[FirestoreOperation]:
        """Every operation listed for the database (following pages)."""
        name = f"projects/{project}/databases/{database}"
        operations: list[FirestoreOperation] = []
        token = ""
        with vendor_errors(
            f"list Firestore operations of {name}", "datastore.operations.list", self._endpoint
        ):
            for _ in range(_MAX_PAGES):
                request = operations_pb2.ListOperationsRequest(name=name, page_token=token)
                page = self._client.list_operations(request=request, timeout=self._timeout)
                operations.extend(operation_of(op) for op in page.operations)
                token = page.next_page_token
                if not token:
                    break
        return operations
