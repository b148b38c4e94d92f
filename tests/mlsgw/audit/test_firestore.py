"""Firestore data-protection review (pure)."""

from __future__ import annotations

from mlsgw.audit.firestore import review_firestore
from mlsgw.gcp.base import BackupSchedule, FirestoreDatabase
from mlsgw.report import Status

DB = "projects/p/databases/(default)"
DAILY = BackupSchedule(f"{DB}/backupSchedules/s1", "daily", "1209600s")


def test_pitr_off_is_a_warning() -> None:
    """Point-in-time recovery disabled: WARNING."""
    [finding] = review_firestore(FirestoreDatabase(DB, False), [DAILY])
    assert finding.code == "firestore.pitr-off" and finding.severity is Status.WARNING


def test_no_backup_schedule_is_a_warning_naming_the_fix() -> None:
    """No managed backups: WARNING that names `mlsgw backup schedule`."""
    [finding] = review_firestore(FirestoreDatabase(DB, True, "604800s"), [])
    assert finding.code == "firestore.no-backup-schedule"
    assert "mlsgw backup schedule" in finding.summary


def test_pitr_and_a_schedule_is_clean() -> None:
    """Both in place: OK, with the retention."""
    [finding] = review_firestore(FirestoreDatabase(DB, True, "604800s"), [DAILY])
    assert finding.severity is Status.OK and "daily kept 1209600s" in finding.summary
