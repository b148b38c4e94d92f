"""Tasks that reuse ``mlsgw audit``'s review areas: the weekly dependency audit (pip-audit),
the monthly certificate check (TLS) and security audit (logs, IAM, service, config,
Firestore). Each area's findings are folded into the task's one result."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from mlsgw.audit import pip_audit
from mlsgw.audit.runner import AuditSettings, config_under_review
from mlsgw.audit.runner import run as audit_run
from mlsgw.report import CheckResult, Status, Verdict
from mlsgw.runbook.context import RunContext

_STATUS = {
    Verdict.GREEN: Status.OK,
    Verdict.YELLOW: Status.WARNING,
    Verdict.RED: Status.CRITICAL,
    Verdict.UNKNOWN: Status.UNKNOWN,
}
SECURITY_AREAS = ("access-logs", "relay-access", "project-iam", "service", "config", "firestore")


def _audit_task(name: str, areas: tuple[str, ...]) -> Callable[..., CheckResult]:
    # ``config``: the maintenance command's ``--config``, which the config area reviews
    # (else $MLSGW_CONFIG), as ``mlsgw audit`` does.
    def task(ctx: RunContext, config: Path | None = None) -> CheckResult:
        mirror = os.environ.get("MLSGW_OSV_URL") or None
        settings = AuditSettings(
            config_path=config_under_review(config),
            scan=functools.partial(pip_audit.run_scan, mirror),
            only=areas,
            credentials_reported=True,  # by the schedule, before the tasks
        )
        report = audit_run(ctx, settings)
        notable = [f for f in report.findings if f.status not in (Status.OK, Status.SKIPPED)]
        shown = notable or list(report.findings)
        status = _STATUS[report.verdict]
        if all(f.status is Status.SKIPPED for f in report.findings):
            status = Status.SKIPPED
        return CheckResult(
            name,
            status,
            "; ".join(list(dict.fromkeys(f.summary for f in shown))[:3]) or report.summary,
            details=tuple(f"{f.status.value}: {f.name}: {f.summary}" for f in report.findings),
            data={"areas": list(areas), "findings": [f.name for f in report.findings]},
        )

    task.__doc__ = f"``mlsgw audit --only {' --only '.join(areas)}`` as one result."
    return task


dependency_audit = _audit_task("dependency_audit", ("dependencies",))
certificate_check = _audit_task("certificate_check", ("tls",))
security_audit = _audit_task("security_audit", SECURITY_AREAS)
