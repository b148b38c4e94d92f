"""``mlsgw backup schedule``: one daily managed backup schedule with a retention, idempotent."""

from __future__ import annotations

from datetime import timedelta

from mlsgw.backups.naming import database_name
from mlsgw.errors import Refused
from mlsgw.report import ActionReport, Change
from mlsgw.resources.backup_schedule import (
    BackupScheduleResource,
    ScheduleChange,
    ScheduleState,
    describe_schedule,
)
from mlsgw.resources.base import Mutation
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, execute


def run_schedule(ctx: RunContext, *, database: str, retention_days: int) -> ActionReport:
    """Create the daily schedule, or update its retention; change nothing when it already
    matches (run twice, the second run writes nothing and says so)."""
    project = ctx.target.project
    if not project:
        raise Refused("no project given: set --project (or MLSGW_PROJECT, or [ops] project)")
    name = database_name(project, database)
    retention = timedelta(days=retention_days)

    def compute(state: ScheduleState) -> ScheduleChange | None:
        if state.daily is not None and state.daily.retention == retention:
            return None
        return ScheduleChange(retention)

    def describe(state: ScheduleState, change: ScheduleChange) -> tuple[Change, ...]:
        wanted = f"daily, keep {change.retention.days} d"
        return (Change(name, "backup schedule", describe_schedule(state.daily), wanted),)

    def applied(state: ScheduleState) -> str:
        daily = state.daily
        return f"{daily.name}: {describe_schedule(daily)}" if daily else "no schedule"

    mutation = Mutation(
        "write schedule",
        BackupScheduleResource(ctx.cloud.firestore_backups(), name),
        compute,
        describe,
        applied,
    )
    action = Action(
        command="backup schedule",
        args={"database": name, "retention_days": retention_days},
        mutations=(mutation,),
        question=f"Write the daily backup schedule of {name} (keep {retention_days} days)?",
        unchanged=f"nothing to change: daily backups of {name} are kept {retention_days} d",
        done=f"daily backups of {name}, kept {retention_days} days",
    )
    return execute(ctx, action)
