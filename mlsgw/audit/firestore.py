"""Firestore data-protection review: point-in-time recovery and managed backup schedules."""

from __future__ import annotations

from collections.abc import Sequence

from mlsgw.audit.findings import Finding, or_clean
from mlsgw.gcp.base import BackupSchedule, FirestoreDatabase
from mlsgw.report import Status

AREA = "firestore"


def review_firestore(
    database: FirestoreDatabase, schedules: Sequence[BackupSchedule]
) -> list[Finding]:
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
    described = ", ".join(f"{s.recurrence} kept {s.retention}" for s in schedules)
    return or_clean(
        AREA,
        findings,
        f"{database.name}: point-in-time recovery on ({database.version_retention}), "
        f"backups {described}",
    )
