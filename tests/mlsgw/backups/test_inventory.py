"""The backup inventory: exports found in a listing, ages, the RPO verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlsgw.backups.inventory import (
    BackupEntry,
    exports_in,
    format_age,
    format_size,
    newest_first,
    rpo_result,
)
from mlsgw.gcp.backup_api import StoredObject
from mlsgw.report import Status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def obj(name: str, size: int = 10) -> StoredObject:
    return StoredObject(name, size, NOW - timedelta(days=9))


def test_exports_are_folders_with_overall_metadata_and_sum_their_objects() -> None:
    """Only folders with <last>.overall_export_metadata count; size sums every object;
    documents come from the manifest; the time from the folder name, else the object."""
    listing = [
        obj("20261201T060000Z/20261201T060000Z.overall_export_metadata", 5),
        obj("20261201T060000Z/all_namespaces/all_kinds/output-0", 100),
        obj("20261201T060000Z/mlsgw/backup.json", 7),
        obj("manual/nightly/nightly.overall_export_metadata", 3),
        obj("stray/file.txt"),
    ]
    manifests = {"20261201T060000Z": {"documents": 42, "database": "projects/p/databases/d"}}
    found = {e.location: e for e in exports_in("b", listing, manifests)}
    assert set(found) == {"gs://b/20261201T060000Z", "gs://b/manual/nightly"}
    ours = found["gs://b/20261201T060000Z"]
    assert ours.size_bytes == 112 and ours.documents == 42
    assert ours.taken == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    other = found["gs://b/manual/nightly"]
    assert other.documents is None and other.taken == NOW - timedelta(days=9)


def entry(age: timedelta | None, state: str = "READY") -> BackupEntry:
    return BackupEntry("export", f"gs://b/{age}", NOW - age if age else None, 1, 1, state)


def test_newest_first_puts_unknown_times_last() -> None:
    """Sorted by time, newest first."""
    ordered = newest_first([entry(timedelta(hours=5)), entry(None), entry(timedelta(hours=1))])
    assert [e.taken for e in ordered] == [NOW - timedelta(hours=1), NOW - timedelta(hours=5), None]


def test_rpo_warns_past_the_limit_and_ignores_unusable_backups() -> None:
    """Younger than the RPO: OK; older: WARNING; none (or only CREATING): WARNING."""
    assert rpo_result([entry(timedelta(hours=23))], NOW, 24).status is Status.OK
    stale = rpo_result([entry(timedelta(hours=25))], NOW, 24)
    assert stale.status is Status.WARNING and "1 d 1 h old" in stale.summary
    assert stale.perf[0].value == 25 * 3600 and stale.perf[0].warn == 24 * 3600
    creating = [entry(timedelta(hours=1), "CREATING"), entry(timedelta(hours=30))]
    assert rpo_result(creating, NOW, 24).status is Status.WARNING
    assert rpo_result([], NOW, 24).status is Status.WARNING


def test_ages_and_sizes_read_like_a_person_wrote_them() -> None:
    """Minutes, hours and minutes, days and hours; bytes in binary units."""
    assert format_age(timedelta(minutes=45)) == "45 min"
    assert format_age(timedelta(hours=5, minutes=3)) == "5 h 3 min"
    assert format_age(timedelta(days=3, hours=4, minutes=59)) == "3 d 4 h"
    assert format_age(None) == "unknown"
    assert format_size(512) == "512 B" and format_size(1536) == "1.5 KiB"
