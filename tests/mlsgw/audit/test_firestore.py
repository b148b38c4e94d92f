"""Firestore data-protection review (pure)."""

from __future__ import annotations

from datetime import timedelta

from mlsgw.audit.firestore import review_firestore
from mlsgw.gcp.backup_api import BackupSchedule, DatabaseInfo
from mlsgw.report import Status

DB = "projects/p/databases/(default)"
DAILY = BackupSchedule(f"{DB}/backupSchedules/s1", timedelta(days=14), "daily")


def database(pitr: bool) -> DatabaseInfo:
    retention = timedelta(days=7) if pitr else timedelta(hours=1)
    return DatabaseInfo(DB, "uid", "europe-west1", pitr, None, retention, None)


def test_pitr_off_is_a_warning() -> None:
    """Point-in-time recovery disabled: WARNING."""
    [finding] = review_firestore(database(False), [DAILY])
    assert finding.code == "firestore.pitr-off" and finding.severity is Status.WARNING


def test_no_backup_schedule_is_a_warning_naming_the_fix() -> None:
    """No managed backups: WARNING that names `mlsgw backup schedule`."""
    [finding] = review_firestore(database(True), [])
    assert finding.code == "firestore.no-backup-schedule"
    assert "mlsgw backup schedule" in finding.summary


def test_pitr_and_a_schedule_is_clean() -> None:
    """Both in place: OK, with the PITR window and the schedule's retention."""
    [finding] = review_firestore(database(True), [DAILY])
    assert finding.severity is Status.OK
    assert "(7 d)" in finding.summary and "daily kept 14 d" in finding.summary
