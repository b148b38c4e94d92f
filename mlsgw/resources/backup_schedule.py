"""A Firestore database's daily managed-backup schedule as a runbook resource."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mlsgw.errors import UsageError
from mlsgw.gcp.backup_api import BackupSchedule, FirestoreBackupsApi

MAX_RETENTION = timedelta(weeks=14)
"""Firestore keeps a scheduled backup at most 14 weeks."""


@dataclass(frozen=True)
class ScheduleState:
    """The database's schedules as read; :attr:`daily` is the one this resource manages."""

    database: str
    daily: BackupSchedule | None
    others: int = 0
    """Weekly schedules, left alone."""


@dataclass(frozen=True)
class ScheduleChange:
    """Keep each daily backup this long (create the schedule when there is none)."""

    retention: timedelta


def describe_schedule(schedule: BackupSchedule | None) -> str:
    """``daily, keep 14 d`` or ``(none)``."""
    if schedule is None:
        return "(none)"
    return f"{schedule.recurrence}, keep {schedule.retention.days} d"


class BackupScheduleResource:
    """:class:`~mlsgw.resources.base.Resource` over Firestore Admin's backup schedules."""

    key = "backup_schedule"
    kind = "Firestore backup schedule"

    def __init__(self, api: FirestoreBackupsApi, database: str) -> None:
        self.api = api
        self.name = database

    def read(self) -> ScheduleState:
        """The daily schedule (if any) and how many others exist."""
        schedules = self.api.list_backup_schedules(self.name)
        daily = next((s for s in schedules if s.recurrence == "daily"), None)
        return ScheduleState(self.name, daily, len(schedules) - (daily is not None))

    def summary(self, state: ScheduleState) -> object:
        """The schedule for the ledger."""
        daily = state.daily
        return {
            "schedule": daily.name if daily else None,
            "retention_days": daily.retention.days if daily else None,
            "other_schedules": state.others,
        }

    def validate(self, state: ScheduleState, change: ScheduleChange) -> str:
        """The database exists and the retention is one Firestore accepts."""
        if change.retention > MAX_RETENTION:
            raise UsageError(f"retention {change.retention.days} d is over 14 weeks (98 days)")
        info = self.api.get_database(self.name)
        return f"{info.name} exists ({info.location}); retention within 14 weeks"

    def apply(self, state: ScheduleState, change: ScheduleChange) -> ScheduleState:
        """Create the daily schedule, or update the one read (a concurrent create is a
        :class:`~mlsgw.errors.Conflict`: the engine reads again and updates instead)."""
        if state.daily is None:
            written = self.api.create_backup_schedule(self.name, change.retention)
        else:
            written = self.api.update_backup_schedule(state.daily.name, change.retention)
        return ScheduleState(self.name, written, state.others)
