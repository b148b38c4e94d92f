"""Firestore data-protection review: point-in-time recovery and managed backup schedules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from mlsgw.audit.findings import Finding, or_clean
from mlsgw.gcp.backup_api import BackupSchedule, DatabaseInfo
from mlsgw.report import Status

AREA = "firestore"


def review_firestore(database: DatabaseInfo, schedules: Sequence[BackupSchedule]) -> list[Finding]:
    """``firestore.pitr-off`` and ``firestore.no-backup-schedule`` findings, or clean."""
    findings = []
    if not database.pitr_enabled:
        findings.append(
            Finding(
                AREA,
                "firestore.pitr-off",
                Status.WARNING,
                "point-in-time recovery is off: data written or deleted by mistake can only be "
                "recovered from the last backup",
                (f"{database.name}: point_in_time_recovery_enablement disabled",),
                {"database": database.name},
            )
        )
    if not schedules:
        findings.append(
            Finding(
                AREA,
                "firestore.no-backup-schedule",
                Status.WARNING,
                "no managed backup schedule: `mlsgw backup schedule` creates a daily one",
                (f"{database.name}: 0 backup schedules",),
                {"database": database.name},
            )
        )
    described = ", ".join(f"{s.recurrence} kept {_days(s.retention)}" for s in schedules)
    return or_clean(
        AREA,
        findings,
        f"{database.name}: point-in-time recovery on "
        f"({_days(database.version_retention) if database.version_retention else 'enabled'}), "
        f"backups {described}",
    )


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    return f"{days:g} d" if days >= 1 else f"{span.total_seconds() / 3600:g} h"
