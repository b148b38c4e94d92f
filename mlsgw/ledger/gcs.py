"""A ledger in a Cloud Storage object (``gs://BUCKET/OBJECT``), with ``google-cloud-storage``.

Objects cannot be appended to in place, so an append rewrites the object: read its metadata
(the *generation*) and its bytes pinned to that generation, add the line chained on those
bytes, and upload with ``ifGenerationMatch`` (0 when the object does not exist yet). When
another writer got in between, the upload answers 412; the store re-reads, re-chains and
tries again, at most :data:`APPEND_ATTEMPTS` times. Each append moves the whole object,
which suits an operator's ledger (a few lines a day).

Vendor errors are translated at this edge: :func:`mlsgw.gcp.errors.vendor_errors` names the
cause (no credentials, missing permission, missing bucket, ...) and the store raises it as a
:class:`~mlsgw.errors.LedgerError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

from google.cloud.storage import Client
from google.cloud.storage.retry import DEFAULT_RETRY

from mlsgw.errors import CloudError, Conflict, LedgerError, NotFound, UsageError
from mlsgw.gcp.errors import vendor_errors
from mlsgw.ledger.base import LineFor

APPEND_ATTEMPTS = 5
"""Uploads tried before giving up on a ledger other writers keep changing."""
CONTENT_TYPE = "application/x-ndjson"


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
        client: Client,
        url: str,
        *,
        timeout: float = 10.0,
        attempts: int = APPEND_ATTEMPTS,
        backoff: float = 0.05,
    ) -> None:
        bucket, self._name = split_url(url)
        self._bucket = client.bucket(bucket)
        self._timeout = timeout
        self._retry = DEFAULT_RETRY.with_timeout(timeout)
        self._attempts = attempts
        self._backoff = backoff

    @property
    def location(self) -> str:
        """``gs://BUCKET/OBJECT``."""
        return f"gs://{self._bucket.name}/{self._name}"

    def _snapshot(self) -> tuple[bytes, int]:
        """The object's bytes and generation (``b"", 0`` when it does not exist)."""
        what = f"read the ledger {self.location}"
        for _ in range(self._attempts):
            with vendor_errors(what, "storage.objects.get"):
                blob = self._bucket.get_blob(self._name, timeout=self._timeout, retry=self._retry)
            if blob is None:
                return b"", 0
            generation = int(blob.generation)
            try:
                with vendor_errors(what, "storage.objects.get"):
                    data: bytes = blob.download_as_bytes(
                        if_generation_match=generation, timeout=self._timeout, retry=self._retry
                    )
            except (Conflict, NotFound):
                continue  # replaced (or deleted) after the metadata was read: read again
            return data, generation
        raise LedgerError(
            f"cannot read {self.location}: it changed on every one of {self._attempts} reads"
        )

    def read(self) -> bytes:
        """The object's bytes; ``b""`` when it does not exist."""
        with _as_ledger_error():
            return self._snapshot()[0]

    def append(self, line_for: LineFor) -> bytes:
        """Upload the object plus ``line_for(object)`` if no one wrote since the read."""
        blob = self._bucket.blob(self._name)
        with _as_ledger_error():
            data, generation = self._snapshot()
            for attempt in range(self._attempts):
                line = line_for(data)
                content = data + line
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
                data, generation = self._snapshot()
                if data == content:  # the upload landed; a retry of it met its own generation
                    return line
                time.sleep(self._backoff * (2**attempt) * random.random())
        raise LedgerError(
            f"gave up appending to {self.location} after {self._attempts} attempts: "
            "other writers kept changing it"
        )
