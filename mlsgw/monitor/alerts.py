"""``mlsgw alerts plan|apply|list`` (R-K8): the rules of ``config/alerts.yaml`` as Cloud
Monitoring alert policies (plus the uptime check of the health-check rule), applied through the
runbook engine so that applying twice changes nothing and every change is in the ledger."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlsgw.errors import UsageError
from mlsgw.gcp.monitoring_config import MonitoringConfigApi, PolicyState, UptimeState
from mlsgw.monitor.rules import (
    UPTIME_PLACEHOLDER,
    AlertRule,
    PolicySpec,
    UptimeSpec,
    load_rules,
    policy_spec,
    uptime_spec,
)
from mlsgw.report import ActionReport, Change, CheckReport, CheckResult, Status
from mlsgw.resources.alert_policy import AlertPolicy
from mlsgw.resources.base import Mutation
from mlsgw.resources.uptime_check import UptimeCheck
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, execute

NEW = "-"


def _require_project(ctx: RunContext) -> str:
    if not ctx.target.project:
        raise UsageError("no project: set --project (or MLSGW_PROJECT, or [ops] project)")
    return ctx.target.project


def relay_host(ctx: RunContext) -> str:
    """The host the uptime check probes: ``--url``'s, else the Cloud Run service's URL's."""
    url = ctx.target.url
    if not url and ctx.target.has_service:
        url = ctx.run.get_service(ctx.target.service_name).uri
    host = urlparse(url or "").hostname
    if not host:
        raise UsageError("no host for the uptime check: give --url (or --region and --service)")
    return host


def template_values(ctx: RunContext) -> dict[str, str]:
    """What the rules' ``${project}``, ``${region}``, ``${service}`` stand for."""
    t = ctx.target
    return {"project": t.project or "", "region": t.region or "", "service": t.service or ""}


def _policy_changes(
    rule_id: str, before: PolicyState | None, after: PolicySpec
) -> tuple[Change, ...]:
    resource = f"alert policy {rule_id}"
    if before is None:
        return (
            Change(resource, "(policy)", NEW, f"create {after.display_name!r} ({after.severity})"),
        )
    return tuple(
        Change(resource, field, _short(old), _short(new))
        for field, new, old in after.differences(before.spec)
    )


def _uptime_changes(
    rule_id: str, before: UptimeState | None, after: UptimeSpec
) -> tuple[Change, ...]:
    resource = f"uptime check {rule_id}"
    if before is None:
        return (
            Change(resource, "(uptime check)", NEW, f"create https://{after.host}{after.path}"),
        )
    return tuple(
        Change(resource, name, str(getattr(before.spec, name)), str(getattr(after, name)))
        for name in after.__dataclass_fields__
        if getattr(before.spec, name) != getattr(after, name)
    )


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _mutations(
    ctx: RunContext, api: MonitoringConfigApi, rules: tuple[AlertRule, ...]
) -> list[Mutation[Any, Any]]:
    project = _require_project(ctx)
    values = template_values(ctx)
    mutations: list[Mutation[Any, Any]] = []
    host: str | None = None
    for rule in rules:
        uptime_resource: UptimeCheck | None = None
        wanted_check = None
        if rule.uptime is not None:
            host = host or relay_host(ctx)
            wanted_check = uptime_spec(rule, host)
        if wanted_check is not None:
            uptime_resource = UptimeCheck(api, project, rule.id)
            mutations.append(
                Mutation(
                    label=f"apply uptime check {rule.id}",
                    resource=uptime_resource,
                    compute=_uptime_compute(wanted_check),
                    describe=_uptime_describer(rule.id),
                )
            )
        wanted = _policy_builder(rule, values, uptime_resource)
        mutations.append(
            Mutation(
                label=f"apply alert policy {rule.id}",
                resource=AlertPolicy(api, project, rule.id, resolve=_resolver(wanted)),
                compute=_policy_compute(wanted),
                describe=_policy_describer(rule.id),
            )
        )
    return mutations


def _uptime_describer(
    rule_id: str,
) -> Callable[[UptimeState | None, UptimeSpec], tuple[Change, ...]]:
    return lambda state, change: _uptime_changes(rule_id, state, change)


def _policy_describer(
    rule_id: str,
) -> Callable[[PolicyState | None, PolicySpec], tuple[Change, ...]]:
    return lambda state, change: _policy_changes(rule_id, state, change)


def _resolver(wanted: Callable[[], PolicySpec]) -> Callable[[PolicySpec], PolicySpec]:
    """At apply time the policy is built again: an uptime check created by the same action
    has its id only now."""
    return lambda _planned: wanted()


def _uptime_compute(wanted: UptimeSpec) -> Callable[[UptimeState | None], UptimeSpec | None]:
    def compute(state: UptimeState | None) -> UptimeSpec | None:
        return None if state is not None and state.spec == wanted else wanted

    return compute


def _policy_builder(
    rule: AlertRule, values: dict[str, str], uptime: UptimeCheck | None
) -> Callable[[], PolicySpec]:
    """The wanted policy, built on demand: the uptime check's id is read when needed, since
    the same action may just have created it."""

    def build() -> PolicySpec:
        check_id = ""
        if uptime is not None:
            state = uptime.read()
            check_id = state.check_id if state is not None else UPTIME_PLACEHOLDER
        return policy_spec(rule, values, check_id)

    return build


def _policy_compute(
    wanted: Callable[[], PolicySpec],
) -> Callable[[PolicyState | None], PolicySpec | None]:
    def compute(state: PolicyState | None) -> PolicySpec | None:
        spec = wanted()
        return None if state is not None and state.spec == spec else spec

    return compute


def _unmanaged_notice(
    api: MonitoringConfigApi, project: str, rules: tuple[AlertRule, ...]
) -> list[str]:
    policies = api.list_policies(project)
    known = {r.id for r in rules}
    notices = []
    others = sum(1 for p in policies if not p.spec.rule_id)
    if others:
        notices.append(f"{others} alert policy(ies) without the mlsgw_rule_id label: left alone")
    orphans = sorted(
        {p.spec.rule_id for p in policies if p.spec.rule_id and p.spec.rule_id not in known}
    )
    if orphans:
        notices.append(
            f"labelled policies whose rule is no longer in the rules file (left alone; delete "
            f"them in the console if they are obsolete): {', '.join(orphans)}"
        )
    return notices


def alerts_action(ctx: RunContext, rules_file: Path) -> Action:
    """The action that makes the project's labelled policies match ``rules_file``."""
    rules = load_rules(rules_file)
    api = ctx.cloud.monitoring_config()
    project = _require_project(ctx)
    return Action(
        command=ctx.command,
        args={"project": project, "rules": str(rules_file), "rule_ids": [r.id for r in rules]},
        mutations=tuple(_mutations(ctx, api, rules)),
        question=f"Apply the alert rules of {rules_file} to project {project}?",
        notices=tuple(_unmanaged_notice(api, project, rules)),
        unchanged=f"all {len(rules)} alert policies already match {rules_file}; nothing written",
        done=f"the alert policies of project {project} now match {rules_file}",
    )


def plan_run(ctx: RunContext, rules_file: Path) -> ActionReport:
    """``alerts plan``: the changes ``apply`` would make; writes nothing, not the ledger."""
    return execute(dataclasses.replace(ctx, dry_run=True), alerts_action(ctx, rules_file))


def apply_run(ctx: RunContext, rules_file: Path) -> ActionReport:
    """``alerts apply``: create or update the policies (confirmed, recorded, idempotent)."""
    return execute(ctx, alerts_action(ctx, rules_file))


def list_run(ctx: RunContext, rules_file: Path) -> CheckReport:
    """``alerts list``: each rule and whether its policy exists and matches (``in sync``,
    ``drift``, ``missing``); a rule that is not in sync is a warning."""
    rules = load_rules(rules_file)
    api = ctx.cloud.monitoring_config()
    project = _require_project(ctx)
    policies = {p.spec.rule_id: p for p in api.list_policies(project) if p.spec.rule_id}
    checks = {c.spec.rule_id: c for c in api.list_uptime_checks(project) if c.spec.rule_id}
    values = template_values(ctx)
    results = []
    for rule in rules:
        check = checks.get(rule.id)
        check_id = check.check_id if check else UPTIME_PLACEHOLDER
        wanted = policy_spec(rule, values, check_id if rule.uptime else "")
        actual = policies.get(rule.id)
        if actual is None:
            status, state = Status.WARNING, "missing"
        elif actual.spec != wanted:
            fields = ", ".join(f for f, _, _ in wanted.differences(actual.spec))
            status, state = Status.WARNING, f"drift ({fields})"
        else:
            status, state = Status.OK, "in sync"
        if rule.uptime is not None and check is None:
            status, state = Status.WARNING, state + "; uptime check missing"
        severity = rule.severity
        results.append(
            CheckResult(
                rule.id,
                status,
                state,
                details=(
                    f"{rule.name}: {rule.condition} for {rule.duration_s // 60} min — "
                    f"{severity.name}, respond within {severity.response_time}",
                ),
                data={
                    "policy": actual.name if actual else None,
                    "uptime_check": check.name if check else None,
                    "severity": severity.name,
                    "response_time": severity.response_time,
                    "duration_s": rule.duration_s,
                },
            )
        )
    return CheckReport(
        ctx.command,
        tuple(results),
        ctx.run_id,
        title=f"mlsgw alerts — {project} ({rules_file})",
        notices=tuple(_unmanaged_notice(api, project, rules)),
    )
