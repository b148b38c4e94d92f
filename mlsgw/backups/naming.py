"""Where backups go and what they are called: the bucket, the export prefix, the snapshot."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mlsgw.errors import UsageError

EXPORT_NAME = "%Y%m%dT%H%M%SZ"
_EXPORT_RE = re.compile(r"\d{8}T\d{6}Z")
SIDE_DIR = "mlsgw"
"""The folder beside the export's own files where mlsgw writes its side files."""
MANIFEST = f"{SIDE_DIR}/backup.json"
SERVICE_FILE = f"{SIDE_DIR}/service.json"
CONFIG_FILE = f"{SIDE_DIR}/relay-config.json"


def backup_bucket(project: str, flag: str | None, configured: str | None) -> str:
    """``--bucket``, else ``[ops] backup_bucket``, else the runbook's ``<project>-backups``."""
    chosen = flag or configured or f"{project}-backups"
    return chosen.removeprefix("gs://").rstrip("/")


def export_name(now: datetime) -> str:
    """The export's folder: the UTC time the backup started, ``20261201T063000Z``."""
    return now.astimezone(UTC).strftime(EXPORT_NAME)


def export_time(name: str) -> datetime | None:
    """The time an export folder name stands for, ``None`` when it is not one of ours."""
    if not _EXPORT_RE.fullmatch(name):
        return None
    return datetime.strptime(name, EXPORT_NAME).replace(tzinfo=UTC)


def snapshot_time(now: datetime) -> datetime:
    """The export's consistent snapshot: the last whole minute strictly before ``now``
    (Firestore accepts only whole minutes in the past)."""
    floor = now.astimezone(UTC).replace(second=0, microsecond=0)
    return floor if floor < now else floor - timedelta(minutes=1)


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``; :class:`UsageError` otherwise."""
    if not uri.startswith("gs://"):
        raise UsageError(f"{uri!r} is not a gs://BUCKET/PREFIX path")
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    prefix = prefix.strip("/")
    if not bucket or not prefix:
        raise UsageError(f"{uri!r} names no export: give gs://BUCKET/PREFIX")
    return bucket, prefix


def overall_metadata(prefix: str) -> str:
    """The object Firestore writes for every export: ``<prefix>/<last>.overall_export_metadata``."""
    return f"{prefix}/{prefix.rsplit('/', 1)[-1]}.overall_export_metadata"


def database_name(project: str, database: str) -> str:
    """``projects/P/databases/D``."""
    return f"projects/{project}/databases/{database}"
