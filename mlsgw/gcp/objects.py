"""Cloud Storage adapter (``google-cloud-storage``): list, read and write objects."""

from __future__ import annotations

from datetime import datetime

from google.api_core.retry import Retry
from google.cloud.storage import Client
from google.cloud.storage.retry import DEFAULT_RETRY

from mlsgw.gcp.backup_api import StoredObject
from mlsgw.gcp.errors import vendor_errors

_MAX_OBJECTS = 100_000


class ObjectStoreAdapter:
    """:class:`mlsgw.gcp.backup_api.ObjectStoreApi` over ``storage.Client``."""

    def __init__(self, client: Client, *, timeout: float) -> None:
        self._client = client
        self._endpoint: str | None = client.api_endpoint
        self._timeout = timeout
        self._retry: Retry = DEFAULT_RETRY.with_timeout(timeout)

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """Every object under ``prefix`` (pages followed), in name order."""
        with vendor_errors(f"list gs://{bucket}/{prefix}", "storage.objects.list", self._endpoint):
            blobs = self._client.list_blobs(
                bucket,
                prefix=prefix or None,
                max_results=_MAX_OBJECTS,
                timeout=self._timeout,
                retry=self._retry,
            )
            return [
                StoredObject(
                    b.name,
                    int(b.size or 0),
                    b.updated if isinstance(b.updated, datetime) else None,
                )
                for b in blobs
            ]

    def read(self, bucket: str, name: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""
        with vendor_errors(f"read gs://{bucket}/{name}", "storage.objects.get", self._endpoint):
            blob = self._client.bucket(bucket).get_blob(
                name, timeout=self._timeout, retry=self._retry
            )
            if blob is None:
                return None
            data: bytes = blob.download_as_bytes(timeout=self._timeout, retry=self._retry)
            return data

    def write(self, bucket: str, name: str, data: bytes, content_type: str) -> None:
        """Create or replace the object."""
        with vendor_errors(f"write gs://{bucket}/{name}", "storage.objects.create", self._endpoint):
            self._client.bucket(bucket).blob(name).upload_from_string(
                data, content_type=content_type, timeout=self._timeout, retry=self._retry
            )
