"""The runbook's maintenance schedules and ``run(ctx)`` for one of them."""

from __future__ import annotations

from collections.abc import Sequence

from mlsgw.audit.runner import missing_credentials
from mlsgw.errors import UsageError
from mlsgw.maintenance.audit_tasks import certificate_check, dependency_audit, security_audit
from mlsgw.maintenance.images import base_image_vulnerabilities, registry_images
from mlsgw.maintenance.log_retention import log_retention
from mlsgw.maintenance.performance import capacity_review, performance_review
from mlsgw.maintenance.relay_tasks import sweep_report
from mlsgw.maintenance.restore_drill import restore_drill
from mlsgw.maintenance.task import Task, never, run_task, without_url
from mlsgw.report import CheckReport, CheckResult, Status
from mlsgw.runbook.context import RunContext

SCHEDULES: dict[str, tuple[Task, ...]] = {
    "weekly": (
        Task(
            "dependency_audit",
            "dependency audit (pip-audit)",
            dependency_audit,
            hour=2,
            cloud=never,
        ),
        Task(
            "performance_review",
            "performance review (7 days of Monitoring)",
            performance_review,
            hour=3,
        ),
        Task(
            "sweep_report",
            "archive and key package sweep counts",
            sweep_report,
            hour=3,
            cloud=without_url,
        ),
        Task(
            "registry_images",
            "images of the last revisions in the registry",
            registry_images,
            hour=4,
        ),
        Task("log_retention", "log bucket retention", log_retention, hour=4),
    ),
    "monthly": (
        Task(
            "certificate_check",
            "TLS certificate of the relay",
            certificate_check,
            hour=5,
            cloud=without_url,
        ),
        Task("capacity_review", "capacity review (30 days)", capacity_review, hour=5),
        Task(
            "base_image_vulnerabilities",
            "vulnerability findings of the serving image",
            base_image_vulnerabilities,
            hour=5,
        ),
        Task(
            "security_audit", "security audit (IAM, service, config, logs)", security_audit, hour=5
        ),
    ),
    "quarterly": (
        Task(
            "restore_drill",
            "restore drill (newest backup into a scratch database)",
            restore_drill,
            hour=6,
            changes=True,
        ),
    ),
}


def select(schedule: str, only: Sequence[str]) -> tuple[Task, ...]:
    """The tasks of ``schedule``, or just those named in ``only``; :class:`UsageError` for
    a name the schedule does not have."""
    tasks = SCHEDULES[schedule]
    if not only:
        return tasks
    names = [t.name for t in tasks]
    unknown = [n for n in only if n.replace("-", "_") not in names]
    if unknown:
        raise UsageError(
            f"{schedule} has no task {', '.join(unknown)}; its tasks: {', '.join(names)}"
        )
    wanted = {n.replace("-", "_") for n in only}
    return tuple(t for t in tasks if t.name in wanted)


def run_schedule(ctx: RunContext, schedule: str, tasks: tuple[Task, ...]) -> CheckReport:
    """Run ``tasks`` one after the other; a task that fails is reported and the next one
    runs. The verdict (and exit code) is the worst result.

    Google credentials are looked up once, before the tasks and within the target's
    timeout, when a task needs them; without any, one ``credentials`` result (UNKNOWN, exit
    3) says so with the fix, the tasks that needed them are skipped pointing at it and the
    others run."""
    missing = missing_credentials(ctx, any(task.cloud(ctx.target) for task in tasks))
    results: list[CheckResult] = []
    if missing:
        results.append(
            CheckResult("credentials", Status.UNKNOWN, f"could not run the cloud tasks: {missing}")
        )
    results += [run_task(ctx, task, credentials_reported=missing is not None) for task in tasks]
    return CheckReport(
        ctx.command,
        tuple(results),
        ctx.run_id,
        title=f"mlsgw maintenance {schedule} — {ctx.target.service or ctx.target.url or 'relay'}",
        data={"schedule": schedule, "tasks": [t.name for t in tasks]},
    )
