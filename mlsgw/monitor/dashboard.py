"""``mlsgw dashboard plan|apply`` (R-K8b): the runbook's primary dashboard, applied through the
runbook engine (idempotent, etag-guarded, recorded in the ledger)."""

from __future__ import annotations

import dataclasses

from mlsgw.errors import UsageError
from mlsgw.gcp.monitoring_config import DashboardState
from mlsgw.monitor.dashboard_spec import DashboardSpec, primary_dashboard
from mlsgw.report import ActionReport, Change
from mlsgw.resources.base import Mutation
from mlsgw.resources.dashboard import Dashboard
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, execute


def _changes(before: DashboardState | None, after: DashboardSpec) -> tuple[Change, ...]:
    resource = f"dashboard {after.key}"
    if before is None:
        charts = sum(len(r.charts) for r in after.rows)
        rows = ", ".join(r.title for r in after.rows)
        return (
            Change(
                resource,
                "(dashboard)",
                "-",
                f"create {after.display_name!r}: {rows} ({charts} charts)",
            ),
        )
    return tuple(
        Change(resource, where, old, new) for where, new, old in after.differences(before.spec)
    )


def dashboard_action(ctx: RunContext) -> Action:
    """The action that makes the project's labelled dashboard the primary dashboard."""
    project, service = ctx.target.project, ctx.target.service
    if not project or not service:
        raise UsageError("the dashboard needs --project and --service (or MLSGW_*, or [ops])")
    wanted = primary_dashboard(service)
    resource = Dashboard(ctx.cloud.monitoring_config(), project, wanted.key)

    def compute(state: DashboardState | None) -> DashboardSpec | None:
        return None if state is not None and state.spec == wanted else wanted

    return Action(
        command=ctx.command,
        args={"project": project, "dashboard": wanted.key},
        mutations=(Mutation("apply dashboard", resource, compute, _changes),),
        question=f"Apply the primary dashboard to project {project}?",
        unchanged="the dashboard already matches; nothing written",
        done=f"the primary dashboard of project {project} is up to date",
    )


def plan_run(ctx: RunContext) -> ActionReport:
    """``dashboard plan``: what ``apply`` would change; writes nothing."""
    return execute(dataclasses.replace(ctx, dry_run=True), dashboard_action(ctx))


def apply_run(ctx: RunContext) -> ActionReport:
    """``dashboard apply``: create or replace the dashboard (confirmed, recorded)."""
    return execute(ctx, dashboard_action(ctx))
