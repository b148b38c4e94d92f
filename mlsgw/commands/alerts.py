"""``mlsgw alerts plan|apply|list`` (R-K8) and ``mlsgw dashboard plan|apply`` (R-K8b)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsgw.commands.common import (
    SERVICE_FIELDS,
    CommandOptions,
    RunbookCommand,
    run_command,
    runbook_command,
)
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

MONITOR_FIELDS = SERVICE_FIELDS
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
    drift (a policy or uptime check edited by hand), nothing to do. Changes nothing.

    One entry per rule; the health-check rule's uptime check on /health is part of its entry.
    Without --url (or a service whose URL can be read) a missing uptime check is planned with
    its host unknown.

    Exit codes: 0 planned (the plan lists any changes), 1 the Monitoring API failed, 3 the rules
    or the target are unusable, permission denied, or no credentials.

    Example: mlsgw alerts plan --project my-proj --service mlsgw --url https://relay.example
    """
    path = rules_path(rules)
    run_command("alerts plan", options, lambda ctx: alerts.plan_run(ctx, path), needs_service=False)


@app.command("apply", cls=RunbookCommand)
@runbook_command(MONITOR_FIELDS, action=True, health_checks=False)
def apply(rules: RulesOpt = None, *, options: CommandOptions) -> None:
    """Create or update the alert policies (and the uptime check on /health) so they match
    the rules; policies without the label are never touched. Applying twice changes nothing.

    The uptime check probes the host of --url, else of the service's URL, else keeps the host
    of the existing check; with none of these, nothing is changed.

    Exit codes: 0 done, already so, or dry run; 1 a change failed; 3 refused before any change
    (not confirmed, no terminal and no --yes, the ledger cannot be written, the rules or the
    target are unusable, no host for a missing uptime check, permission denied, no
    credentials).

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
    missing).

    Exit codes: 0 every rule in sync, 1 a rule missing or drifted (or its uptime check missing),
    3 could not list (the rules or the target are unusable, the API failed, permission denied,
    no credentials).

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

    Exit codes: 0 done, already so, or dry run; 1 the change failed; 3 refused before any
    change (not confirmed, no terminal and no --yes, the ledger cannot be written, no
    --project or --service, permission denied, no credentials).

    Example: mlsgw dashboard apply --yes
    """
    run_command("dashboard apply", options, dashboard.apply_run, needs_service=False)
