"""A stand-in of the Cloud Storage JSON API: the object routes ``google-cloud-storage`` calls.

Routes (as the client sends them; object names arrive URL-encoded and are matched unquoted):

- ``GET /storage/v1/b/{bucket}``: bucket metadata (the client fetches it in the background).
- ``GET /storage/v1/b/{bucket}/o``: object listing in name order with ``prefix``,
  ``delimiter`` (``prefixes``), ``maxResults`` and ``pageToken``.
- ``GET [/download]/storage/v1/b/{bucket}/o/{object}``: object metadata, or its bytes with
  ``alt=media`` (``x-goog-generation`` and ``x-goog-hash`` headers as GCS sends them).
  ``generation`` selects a generation; ``ifGenerationMatch`` answers 412 on a mismatch.
- ``POST /upload/storage/v1/b/{bucket}/o``: ``uploadType=multipart`` (metadata + bytes,
  ``crc32c`` checked; custom ``metadata`` kept and returned) or ``uploadType=media``
  (``name`` in the query), honouring ``ifGenerationMatch`` (0: only if the object does not
  exist).
- ``GET /storage/v1/b/{bucket}/iam/testPermissions``: the requested permissions the caller
  holds (all but :attr:`StorageStandIn.denied`).

Missing buckets and objects answer 404. Every write gets a new, larger generation.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import google_crc32c

from tests.stand_ins.rest import ApiError, Json, Media, Reply, Request, RestServer

_BUCKET = r"/storage/v1/b/(?P<bucket>[^/]+)"
_OBJECT = r"(?:/download)?/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>.+)"
_LIST = r"/storage/v1/b/(?P<bucket>[^/]+)/o"
_UPLOAD = r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o"
_PRECONDITION = "At least one of the pre-conditions you specified did not hold."


def _crc32c(data: bytes) -> str:
    # google_crc32c ships py.typed but leaves Checksum's methods unannotated.
    digest: bytes = google_crc32c.Checksum(data).digest()  # type: ignore[no-untyped-call]
    return base64.b64encode(digest).decode()


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@dataclass(frozen=True)
class StoredObject:
    """One object's current generation."""

    data: bytes
    generation: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))


class StorageStandIn:
    """Buckets of objects; tests create buckets and may write objects as another writer."""

    def __init__(self, server: RestServer) -> None:
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self._generations = itertools.count(1_700_000_000_000_001)
        self._before_upload: list[Callable[[bytes], object]] = []
        self.denied: set[str] = set()
        """Permissions testIamPermissions reports as not held."""
        server.route("GET", _BUCKET, self._get_bucket)
        server.media_route("GET", _BUCKET + "/iam/testPermissions", self._test_permissions)
        server.route("GET", _LIST, self._list)
        server.media_route("GET", _OBJECT, self._get_object)
        server.media_route("POST", _UPLOAD, self._upload)

    def add_bucket(self, bucket: str) -> None:
        """An empty bucket."""
        self.buckets.setdefault(bucket, {})

    def put(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str = "text/plain",
        metadata: dict[str, str] | None = None,
        updated: datetime | None = None,
    ) -> int:
        """Write an object directly (another writer); its new generation."""
        generation = next(self._generations)
        stored = StoredObject(
            data, generation, content_type, dict(metadata or {}), updated or datetime.now(UTC)
        )
        self._objects(bucket)[name] = stored
        return generation

    def get(self, bucket: str, name: str) -> StoredObject | None:
        """The object as stored, or ``None``."""
        return self.buckets.get(bucket, {}).get(name)

    def before_next_upload(self, action: Callable[[bytes], object]) -> None:
        """Run ``action(uploaded bytes)`` when the next upload arrives, before its
        precondition is checked: a concurrent writer getting in between read and write.
        Actions queue up, one per upload."""
        self._before_upload.append(action)

    def _objects(self, bucket: str) -> dict[str, StoredObject]:
        if bucket not in self.buckets:
            raise ApiError(404, "The specified bucket does not exist.")
        return self.buckets[bucket]

    def _resource(self, bucket: str, name: str, obj: StoredObject) -> Json:
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{obj.generation}",
            "bucket": bucket,
            "name": name,
            "generation": str(obj.generation),
            "metageneration": "1",
            "contentType": obj.content_type,
            "size": str(len(obj.data)),
            "md5Hash": _md5(obj.data),
            "crc32c": _crc32c(obj.data),
            **({"metadata": dict(obj.metadata)} if obj.metadata else {}),
            "updated": obj.updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def _list(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        bucket = m["bucket"]
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        names = sorted(n for n in self._objects(bucket) if n.startswith(prefix))
        items, prefixes = [], set()
        for name in names:
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                items.append(name)
        start = int(query.get("pageToken") or 0)
        size = int(query.get("maxResults") or 1000)
        objects = self.buckets[bucket]
        page: Json = {
            "kind": "storage#objects",
            "items": [self._resource(bucket, n, objects[n]) for n in items[start : start + size]],
        }
        if prefixes and start == 0:
            page["prefixes"] = sorted(prefixes)
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return 200, page

    def _get_bucket(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        self._objects(m["bucket"])
        return 200, {"kind": "storage#bucket", "name": m["bucket"], "location": "EUROPE-WEST1"}

    def _get_object(self, m: re.Match[str], request: Request) -> Reply:
        bucket, name, query = m["bucket"], m["object"], request.query
        obj = self._objects(bucket).get(name)
        if obj is None or ("generation" in query and int(query["generation"]) != obj.generation):
            raise ApiError(404, f"No such object: {bucket}/{name}")
        if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != obj.generation:
            raise ApiError(412, _PRECONDITION)
        if query.get("alt") != "media":
            return 200, self._resource(bucket, name, obj)
        hashes = f"crc32c={_crc32c(obj.data)},md5={_md5(obj.data)}"
        headers = {"x-goog-generation": str(obj.generation), "x-goog-hash": hashes}
        return 200, Media(obj.data, obj.content_type, headers)

    def _upload(self, m: re.Match[str], request: Request) -> Reply:
        bucket, query = m["bucket"], request.query
        content_type = request.headers.get("content-type", "application/octet-stream")
        metadata: Json = {}
        if query.get("uploadType") == "multipart":
            metadata, content_type, data = _multipart(content_type, request.raw)
            name = str(metadata.get("name", ""))
            if "crc32c" in metadata and metadata["crc32c"] != _crc32c(data):
                raise ApiError(400, "Provided CRC32C does not match the object's content.")
        elif query.get("uploadType") == "media":
            name, data = query.get("name", ""), request.raw
        else:
            raise ApiError(400, f"stand-in does not support uploadType={query.get('uploadType')}")
        if not name:
            raise ApiError(400, "Required: object name")
        objects = self._objects(bucket)
        if self._before_upload:
            self._before_upload.pop(0)(data)
        if "ifGenerationMatch" in query:
            current = objects.get(name)
            if int(query["ifGenerationMatch"]) != (current.generation if current else 0):
                raise ApiError(412, _PRECONDITION)
        custom = metadata.get("metadata") if query.get("uploadType") == "multipart" else None
        self.put(bucket, name, data, content_type, dict(custom or {}))
        return 200, self._resource(bucket, name, objects[name])

    def _test_permissions(self, m: re.Match[str], request: Request) -> Reply:
        self._objects(m["bucket"])
        asked = request.query_lists.get("permissions", [])
        held = [p for p in asked if p not in self.denied]
        return 200, {"kind": "storage#testIamPermissionsResponse", "permissions": held}


def _multipart(content_type: str, raw: bytes) -> tuple[Json, str, bytes]:
    """``multipart/related``: (JSON metadata, the media part's content type, its bytes)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        raise ApiError(400, "multipart upload without a boundary")
    delimiter = b"--" + found.group(1).encode()
    parts = raw.split(delimiter)[1:-1]
    if len(parts) != 2:
        raise ApiError(400, f"multipart upload with {len(parts)} parts, expected 2")
    sections = []
    for part in parts:
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.decode().partition(":") for line in head.split(b"\r\n"))
        )
        sections.append((headers.get("content-type", ""), content.removesuffix(b"\r\n")))
    metadata: Json = json.loads(sections[0][1])
    return metadata, sections[1][0], sections[1][1]
