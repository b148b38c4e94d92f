"""What backups exist, how old they are, and whether the newest meets the RPO (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlsgw.backups.naming import MANIFEST, export_time
from mlsgw.gcp.backup_api import ManagedBackup, StoredObject
from mlsgw.report import CheckResult, Perf, Status, Table

_OVERALL = ".overall_export_metadata"


@dataclass(frozen=True)
class BackupEntry:
    """One backup of either kind, as ``backup list`` shows it."""

    kind: str
    """``export`` (Firestore export in Cloud Storage) or ``managed`` (Firestore backup)."""
    location: str
    """``gs://bucket/prefix`` or ``projects/P/locations/L/backups/ID``: what restore takes."""
    taken: datetime | None
    size_bytes: int | None
    documents: int | None
    state: str = "READY"
    database: str | None = None

    def age(self, now: datetime) -> timedelta | None:
        """How long ago the backup was taken."""
        return now - self.taken if self.taken else None

    def as_dict(self, now: datetime) -> dict[str, object]:
        """The JSON shape of ``backup list --json``."""
        age = self.age(now)
        return {
            "kind": self.kind,
            "location": self.location,
            "taken": self.taken.isoformat() if self.taken else None,
            "age_seconds": int(age.total_seconds()) if age is not None else None,
            "age": format_age(age),
            "size_bytes": self.size_bytes,
            "documents": self.documents,
            "state": self.state,
            "database": self.database,
        }


def export_prefixes(objects: Iterable[StoredObject]) -> dict[str, StoredObject]:
    """Export prefix -> its overall metadata object, for every export in the listing."""
    found = {}
    for obj in objects:
        folder, _, leaf = obj.name.rpartition("/")
        if folder and leaf == folder.rsplit("/", 1)[-1] + _OVERALL:
            found[folder] = obj
    return found


def parse_manifest(data: bytes | None) -> dict[str, object]:
    """mlsgw's side file of an export (``{}`` when missing or unreadable)."""
    if not data:
        return {}
    try:
        document = json.loads(data)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def exports_in(
    bucket: str, objects: list[StoredObject], manifests: Mapping[str, Mapping[str, object]]
) -> list[BackupEntry]:
    """Every export in the bucket listing; counts from its manifest (``prefix`` -> manifest)."""
    entries = []
    for prefix, overall in export_prefixes(objects).items():
        inside = [o for o in objects if o.name.startswith(prefix + "/")]
        manifest = manifests.get(prefix, {})
        taken = export_time(prefix.rsplit("/", 1)[-1]) or overall.updated
        entries.append(
            BackupEntry(
                kind="export",
                location=f"gs://{bucket}/{prefix}",
                taken=taken,
                size_bytes=sum(o.size for o in inside),
                documents=_int(manifest.get("documents")),
                database=str(manifest["database"]) if manifest.get("database") else None,
            )
        )
    return entries


def managed_entries(backups: Iterable[ManagedBackup]) -> list[BackupEntry]:
    """Managed backups as entries."""
    return [
        BackupEntry(
            kind="managed",
            location=b.name,
            taken=b.snapshot_time,
            size_bytes=b.size_bytes,
            documents=b.document_count,
            state=b.state,
            database=b.database,
        )
        for b in backups
    ]


def newest_first(entries: Iterable[BackupEntry]) -> list[BackupEntry]:
    """Newest first; backups with no time last."""
    return sorted(entries, key=lambda e: (e.taken is not None, e.taken), reverse=True)


def manifest_prefixes(objects: Iterable[StoredObject]) -> set[str]:
    """Export prefixes that have an mlsgw manifest beside them."""
    return {o.name.removesuffix("/" + MANIFEST) for o in objects if o.name.endswith("/" + MANIFEST)}


def format_age(age: timedelta | None) -> str:
    """``45 min``, ``5 h 10 min``, ``3 d 4 h``."""
    if age is None:
        return "unknown"
    minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def format_size(size: int | None) -> str:
    """``512 B``, ``1.4 MiB``."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def backups_table(entries: list[BackupEntry], now: datetime) -> Table:
    """The ``backup list`` table, in the order given."""
    rows = tuple(
        (
            e.kind,
            e.location,
            f"{e.taken:%Y-%m-%d %H:%M}" if e.taken else "",
            format_age(e.age(now)),
            format_size(e.size_bytes),
            "" if e.documents is None else str(e.documents),
            e.state,
        )
        for e in entries
    )
    columns = ("kind", "backup", "taken (UTC)", "age", "size", "documents", "state")
    return Table("Backups", columns, rows)


def rpo_result(entries: list[BackupEntry], now: datetime, rpo_hours: float) -> CheckResult:
    """OK when the newest usable backup is younger than the RPO, else WARNING."""
    usable = [e for e in newest_first(entries) if e.taken and e.state == "READY"]
    limit = timedelta(hours=rpo_hours)
    if not usable:
        return CheckResult(
            "backups",
            Status.WARNING,
            f"no backup found; the RPO is {rpo_hours:g} h: run `mlsgw backup`",
            perf=(Perf("backup_age", -1, "s", rpo_hours * 3600),),
        )
    newest = usable[0]
    age = newest.age(now) or timedelta()
    perf = (Perf("backup_age", int(age.total_seconds()), "s", rpo_hours * 3600),)
    data = {"newest": newest.as_dict(now), "rpo_hours": rpo_hours}
    where = f"{newest.kind} {newest.location}"
    if age > limit:
        return CheckResult(
            "backups",
            Status.WARNING,
            f"newest backup is {format_age(age)} old, older than the RPO of {rpo_hours:g} h",
            (where, "run `mlsgw backup` (or `mlsgw backup schedule` for daily managed backups)"),
            perf,
            data,
        )
    return CheckResult(
        "backups", Status.OK, f"newest backup {format_age(age)} old ({where})", perf=perf, data=data
    )
