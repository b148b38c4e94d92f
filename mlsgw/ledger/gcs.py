"""A ledger in a Cloud Storage object (``gs://BUCKET/OBJECT``), with ``google-cloud-storage``.

Objects cannot be appended to in place, so an append rewrites the object: read its metadata
(the *generation*) and its bytes pinned to that generation, add the line chained on those
bytes, and upload with ``ifGenerationMatch`` (0 when the object does not exist yet). When
another writer got in between, the upload answers 412; the store re-reads, re-chains and
tries again, at most :data:`APPEND_ATTEMPTS` times. Each append moves the whole object,
which suits an operator's ledger (a few lines a day).

The head of the chain (entries and the hash of the last line) travels in the object's own
metadata (``mlsgw-entries``, ``mlsgw-last``), written by the same guarded upload.

Vendor errors are translated at this edge: :func:`mlsgw.gcp.errors.vendor_errors` names the
cause (no credentials, missing permission, missing bucket, ...) and the store raises it as a
:class:`~mlsgw.errors.LedgerError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from google.cloud.storage import Client
from google.cloud.storage.retry import DEFAULT_RETRY

from mlsgw.errors import CloudError, Conflict, LedgerError, NotFound, UsageError
from mlsgw.gcp.errors import vendor_errors
from mlsgw.ledger.base import Head, LineFor, head_of

APPEND_ATTEMPTS = 5
"""Uploads tried before giving up on a ledger other writers keep changing."""
CONTENT_TYPE = "application/x-ndjson"
HEAD_ENTRIES, HEAD_LAST = "mlsgw-entries", "mlsgw-last"
APPEND_PERMISSIONS = ("storage.objects.get", "storage.objects.create")


def split_url(url: str) -> tuple[str, str]:
    """``gs://bucket/path/to/object`` -> ``("bucket", "path/to/object")``."""
    bucket, _, name = url.removeprefix("gs://").partition("/")
    if not url.startswith("gs://") or not bucket or not name or name.endswith("/"):
        raise UsageError(f"ledger {url}: give a Cloud Storage object as gs://BUCKET/OBJECT")
    return bucket, name


@contextmanager
def _as_ledger_error() -> Iterator[None]:
    try:
        yield
    except CloudError as exc:
        raise LedgerError(str(exc)) from exc


class GcsLedgerStore:
    """:class:`~mlsgw.ledger.base.LedgerStore` over one Cloud Storage object."""

    def __init__(
        self,
        client: Client | Callable[[], Client],
        url: str,
        *,
        timeout: float = 10.0,
        attempts: int = APPEND_ATTEMPTS,
        backoff: float = 0.05,
    ) -> None:
        self._bucket_name, self._name = split_url(url)
        self._client = client
        self._bucket_handle: Any = None
        self._timeout = timeout
        self._retry = DEFAULT_RETRY.with_timeout(timeout)
        self._attempts = attempts
        self._backoff = backoff

    @property
    def location(self) -> str:
        """``gs://BUCKET/OBJECT``."""
        return f"gs://{self._bucket_name}/{self._name}"

    @property
    def _bucket(self) -> Any:
        """The bucket handle; the client is built on first use (no credentials before)."""
        if self._bucket_handle is None:
            client = self._client if isinstance(self._client, Client) else self._client()
            self._bucket_handle = client.bucket(self._bucket_name)
        return self._bucket_handle

    def _blob(self) -> Any:
        with vendor_errors(f"read the ledger {self.location}", "storage.objects.get"):
            return self._bucket.get_blob(self._name, timeout=self._timeout, retry=self._retry)

    def exists(self) -> bool:
        """The object exists."""
        with _as_ledger_error():
            return self._blob() is not None

    def read_with_head(self) -> tuple[bytes, Head | None]:
        """The object's bytes and the head in the metadata of that same generation."""
        with _as_ledger_error():
            data, _, metadata = self._snapshot()
        if HEAD_ENTRIES not in metadata:
            return data, None
        try:
            return data, Head(int(metadata[HEAD_ENTRIES]), str(metadata.get(HEAD_LAST, "")))
        except ValueError as exc:
            raise LedgerError(f"{self.location}: unreadable head metadata: {exc}") from exc

    def check_writable(self) -> None:
        """The bucket exists and the caller holds the permissions an append needs."""
        wanted = list(APPEND_PERMISSIONS)
        with _as_ledger_error():
            if self._blob() is not None:
                wanted.append("storage.objects.delete")  # replacing an object deletes it
            with vendor_errors(f"check access to the ledger {self.location}"):
                granted = set(
                    self._bucket.test_iam_permissions(
                        wanted, timeout=self._timeout, retry=self._retry
                    )
                )
        missing = [p for p in wanted if p not in granted]
        if missing:
            raise LedgerError(
                f"the ledger {self.location} cannot be written: missing "
                f"{', '.join(missing)} (e.g. roles/storage.objectUser on the bucket)"
            )

    def _snapshot(self) -> tuple[bytes, int, dict[str, str]]:
        """The object's bytes, generation and metadata (``b"", 0, {}`` when it does not
        exist)."""
        what = f"read the ledger {self.location}"
        for _ in range(self._attempts):
            with vendor_errors(what, "storage.objects.get"):
                blob = self._bucket.get_blob(self._name, timeout=self._timeout, retry=self._retry)
            if blob is None:
                return b"", 0, {}
            generation = int(blob.generation)
            try:
                with vendor_errors(what, "storage.objects.get"):
                    data: bytes = blob.download_as_bytes(
                        if_generation_match=generation, timeout=self._timeout, retry=self._retry
                    )
            except (Conflict, NotFound):
                continue  # replaced (or deleted) after the metadata was read: read again
            return data, generation, dict(blob.metadata or {})
        raise LedgerError(
            f"cannot read {self.location}: it changed on every one of {self._attempts} reads"
        )

    def read(self) -> bytes:
        """The object's bytes; ``b""`` when it does not exist."""
        with _as_ledger_error():
            return self._snapshot()[0]

    def append(self, line_for: LineFor) -> bytes:
        """Upload the object plus ``line_for(object)`` if no one wrote since the read."""
        with _as_ledger_error():
            blob = self._bucket.blob(self._name)
            data, generation, _ = self._snapshot()
            for attempt in range(self._attempts):
                line = line_for(data)
                content = data + line
                head = head_of(content)
                blob.metadata = {HEAD_ENTRIES: str(head.entries), HEAD_LAST: head.last}
                try:
                    with vendor_errors(
                        f"append to the ledger {self.location}", "storage.objects.create"
                    ):
                        blob.upload_from_string(
                            content,
                            content_type=CONTENT_TYPE,
                            if_generation_match=generation,
                            timeout=self._timeout,
                            retry=self._retry,
                        )
                    return line
                except Conflict:
                    pass
                data, generation, _ = self._snapshot()
                if data == content:  # the upload landed; a retry of it met its own generation
                    return line
                time.sleep(self._backoff * (2**attempt) * random.random())
        raise LedgerError(
            f"gave up appending to {self.location} after {self._attempts} attempts: "
            "other writers kept changing it"
        )
