"""The weekly log retention check: how long each Cloud Logging bucket keeps entries."""

from __future__ import annotations

from mlsgw.maintenance.task import need
from mlsgw.report import CheckResult, Status
from mlsgw.runbook.context import RunContext

MIN_RETENTION_DAYS = 30
"""The runbook's evidence needs a month of logs (Cloud Logging's default for _Default)."""


def log_retention(ctx: RunContext) -> CheckResult:
    """Each bucket's retention; a bucket keeping less than 30 days is a warning (an incident
    found late would have no logs left)."""
    project = need(ctx.target.project, "--project", "the log retention check")
    buckets = ctx.cloud.logs().list_buckets(project)
    if not buckets:
        return CheckResult("log_retention", Status.WARNING, f"no log buckets in {project}")
    short = [b for b in buckets if b.retention_days < MIN_RETENTION_DAYS]
    listed = ", ".join(
        f"{b.name.rsplit('/', 1)[-1]} {b.retention_days} d" + (" (locked)" if b.locked else "")
        for b in buckets
    )
    if short:
        names = ", ".join(b.name.rsplit("/", 1)[-1] for b in short)
        summary = f"{names} keep(s) less than {MIN_RETENTION_DAYS} days — {listed}"
    else:
        summary = f"every bucket keeps at least {MIN_RETENTION_DAYS} days — {listed}"
    return CheckResult(
        "log_retention",
        Status.WARNING if short else Status.OK,
        summary,
        data={
            "buckets": [
                {"name": b.name, "retention_days": b.retention_days, "locked": b.locked}
                for b in buckets
            ]
        },
    )
