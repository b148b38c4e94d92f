"""``mlsgw backup schedule``: one daily managed backup schedule with a retention, idempotent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mlsgw.backups.naming import database_name
from mlsgw.backups.safety import unwritable_ledger
from mlsgw.errors import MlsgwError, Refused
from mlsgw.gcp.backup_api import BackupSchedule
from mlsgw.report import ActionReport, Change, Outcome, Status, Step
from mlsgw.runbook.context import RunContext


def _describe(schedule: BackupSchedule | None) -> str:
    if schedule is None:
        return "(none)"
    return f"{schedule.recurrence}, keep {schedule.retention.days} d"


def run_schedule(ctx: RunContext, *, database: str, retention_days: int) -> ActionReport:
    """Create the daily schedule, or update its retention; change nothing when it already
    matches (run twice, the second run writes nothing and says so)."""
    project = ctx.target.project
    if not project:
        raise Refused("no project given: set --project (or MLSGW_PROJECT, or [ops] project)")
    name = database_name(project, database)
    api = ctx.cloud.firestore_backups()
    ctx.reporter.step("reading the backup schedules")
    schedules = api.list_backup_schedules(name)
    daily = next((s for s in schedules if s.recurrence == "daily"), None)
    retention = timedelta(days=retention_days)
    wanted = BackupSchedule(daily.name if daily else "", retention, "daily")
    plan = (Change(name, "backup schedule", _describe(daily), _describe(wanted)),)
    steps = [Step("read", Status.OK, f"{len(schedules)} schedule(s): {_describe(daily)}")]
    result: dict[str, Any] = {}

    def report(outcome: Outcome, summary: str) -> ActionReport:
        done = ActionReport(
            "backup schedule",
            outcome,
            summary,
            ctx.run_id,
            plan=plan,
            steps=tuple(steps),
            data={"result": result},
        )
        if outcome is not Outcome.PLANNED:
            ctx.ledger.append(
                command="backup schedule",
                run_id=ctx.run_id,
                args={"database": name, "retention_days": retention_days},
                plan=[vars(c) for c in plan],
                pre_state={
                    "schedule": daily.name if daily else None,
                    "retention_days": daily.retention.days if daily else None,
                },
                result={"outcome": outcome.value, "summary": summary, **result},
            )
        return done

    if daily is not None and daily.retention == retention:
        steps.append(Step("compare", Status.OK, "already as wanted; nothing written"))
        result["schedule"] = daily.name
        return report(Outcome.DONE, f"nothing to change: {_describe(daily)} ({daily.name})")
    if ctx.dry_run:
        api.get_database(name)
        steps.append(Step("validate", Status.OK, f"{name} exists"))
        return report(Outcome.PLANNED, "dry run: the plan above was validated; nothing was changed")
    verb = "Update" if daily else "Create"
    if problem := unwritable_ledger(ctx):
        return ActionReport("backup schedule", Outcome.REFUSED, problem, ctx.run_id, plan=plan)
    try:
        ctx.confirm(f"{verb} the daily backup schedule of {name} (keep {retention_days} days)?")
    except Refused as exc:
        steps.append(Step("confirm", Status.SKIPPED, str(exc)))
        return report(Outcome.REFUSED, str(exc))
    try:
        if daily is None:
            written = api.create_backup_schedule(name, retention)
        else:
            written = api.update_backup_schedule(daily.name, retention)
    except MlsgwError as exc:
        steps.append(Step(verb.lower(), Status.CRITICAL, str(exc)))
        result["error"] = str(exc)
        return report(Outcome.FAILED, f"the schedule was not written: {exc}")
    result["schedule"] = written.name
    steps.append(Step(verb.lower(), Status.OK, f"{written.name}: {_describe(written)}"))
    return report(Outcome.DONE, f"daily backups of {name}, kept {retention_days} days")
