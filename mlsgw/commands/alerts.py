"""``mlsgw alerts plan|apply|list`` (R-K8) and ``mlsgw dashboard plan|apply`` (R-K8b)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsgw.commands.common import CommandOptions, RunbookCommand, run_command, runbook_command
from mlsgw.commands.usage import MlsgwGroup
from mlsgw.monitor import alerts, dashboard
from mlsgw.monitor.rules import rules_path

app = typer.Typer(
    help="The runbook's alert rules (config/alerts.yaml) as Cloud Monitoring alert policies.",
    no_args_is_help=True,
    cls=MlsgwGroup,
)
dashboard_app = typer.Typer(
    help="The runbook's primary dashboard as a Cloud Monitoring dashboard.",
    no_args_is_help=True,
    cls=MlsgwGroup,
)

MONITOR_FIELDS = (
    "project",
    "region",
    "service",
    "url",
    "endpoint",
    "monitoring_endpoint",
    "ledger",
    "timeout",
)
RulesOpt = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="The alert rules (default: config/alerts.yaml here, else the one shipped).",
    ),
]


@app.command("plan", cls=RunbookCommand)
@runbook_command(MONITOR_FIELDS)
def plan(rules: RulesOpt = None, *, options: CommandOptions) -> None:
    """Show how the alert policies labelled mlsgw_rule_id differ from the rules: creations,
    drift (a policy edited by hand), nothing to do. Changes nothing.

    Exit 0, 3 when the rules or the target are unusable.

    Exit codes: 0 planned (the plan lists any changes), 1 the API failed, 3 usage error or no
    credentials.

    Example: mlsgw alerts plan --project my-proj --service mlsgw --url https://relay.example
    """
    path = rules_path(rules)
    run_command("alerts plan", options, lambda ctx: alerts.plan_run(ctx, path), needs_service=False)


@app.command("apply", cls=RunbookCommand)
@runbook_command(MONITOR_FIELDS, action=True, health_checks=False)
def apply(rules: RulesOpt = None, *, options: CommandOptions) -> None:
    """Create or update the alert policies (and the uptime check on /health) so they match
    the rules; policies without the label are never touched. Applying twice changes nothing.

    Exit 0 done or already so, 1 failed, 3 refused (no TTY and no --yes, no ledger).

    Exit codes: 0 done (or dry run), 1 failed, 3 refused (not confirmed, no terminal and no
    --yes) or no credentials.

    Example: mlsgw alerts apply --yes
    """
    path = rules_path(rules)
    run_command(
        "alerts apply", options, lambda ctx: alerts.apply_run(ctx, path), needs_service=False
    )


@app.command("list", cls=RunbookCommand)
@runbook_command(MONITOR_FIELDS)
def list_(rules: RulesOpt = None, *, options: CommandOptions) -> None:
    """Each rule with its severity, response time and state in the project (in sync, drift,
    missing). Exit 0 all in sync, 1 some missing or drifted, 3 unusable.

    Exit codes: 0 every rule in sync, 1 a rule missing or drifted, 3 could not list (usage error
    or no credentials).

    Example: mlsgw alerts list --json
    """
    path = rules_path(rules)
    run_command(
        "alerts list",
        options,
        lambda ctx: alerts.list_run(ctx, path),
        needs_service=False,
        records=False,
    )


@dashboard_app.command("plan", cls=RunbookCommand)
@runbook_command(MONITOR_FIELDS)
def dashboard_plan(*, options: CommandOptions) -> None:
    """Show how the dashboard labelled mlsgw_dashboard differs from the primary dashboard
    (service health, performance, MLS, infrastructure). Changes nothing.

    Exit codes: 0 planned (the plan lists any changes), 1 the API failed, 3 usage error or no
    credentials.

    Example: mlsgw dashboard plan --project my-proj --service mlsgw
    """
    run_command("dashboard plan", options, dashboard.plan_run, needs_service=False)


@dashboard_app.command("apply", cls=RunbookCommand)
@runbook_command(MONITOR_FIELDS, action=True, health_checks=False)
def dashboard_apply(*, options: CommandOptions) -> None:
    """Create or replace the primary dashboard (etag-guarded). Applying twice changes nothing.

    Exit 0 done or already so, 1 failed, 3 refused.

    Exit codes: 0 done (or dry run), 1 failed, 3 refused (not confirmed, no terminal and no
    --yes) or no credentials.

    Example: mlsgw dashboard apply --yes
    """
    run_command("dashboard apply", options, dashboard.apply_run, needs_service=False)
