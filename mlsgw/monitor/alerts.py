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
from mlsgw.gcp.monitoring_config import MonitoringConfigApi, UptimeState
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
from mlsgw.resources.alert_rule import AlertRuleResources, RuleChange, RuleState
from mlsgw.resources.base import Mutation
from mlsgw.resources.uptime_check import UptimeCheck
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, execute

NEW = "-"


def _require_project(ctx: RunContext) -> str:
    if not ctx.target.project:
        raise UsageError("no project: set --project (or MLSGW_PROJECT, or [ops] project)")
    return ctx.target.project


def relay_host(ctx: RunContext) -> str | None:
    """The host the uptime check probes: ``--url``'s, else the Cloud Run service's URL's when
    the service is named and Cloud Run can be reached; ``None`` when neither is known."""
    url = ctx.target.url
    if not url and ctx.target.has_service and ctx.cloud.skip_reason("run") is None:
        url = ctx.run.get_service(ctx.target.service_name).uri
    return urlparse(url or "").hostname or None


def _unknown_host(ctx: RunContext, rule_ids: list[str]) -> str:
    """Why the uptime check of ``rule_ids`` has no host, and what to give."""
    reason = f"no host for the uptime check of {', '.join(rule_ids)}: give --url"
    skipped = ctx.cloud.skip_reason("run")
    if not ctx.target.has_service:
        return reason + " (or --region and --service to use the service's URL)"
    if skipped:
        return reason + f" (the service's URL cannot be read: {skipped})"
    return reason


def template_values(ctx: RunContext) -> dict[str, str]:
    """What the rules' ``${project}``, ``${region}``, ``${service}`` stand for."""
    t = ctx.target
    return {"project": t.project or "", "region": t.region or "", "service": t.service or ""}


def _where(check: UptimeSpec) -> str:
    if not check.host:
        return f"{check.path} (host unknown: give --url)"
    return f"https://{check.host}{check.path}"


def _uptime_changes(resource: str, before: UptimeState | None, after: UptimeSpec) -> list[Change]:
    if before is None:
        return [Change(resource, "(uptime check)", NEW, f"create {_where(after)}")]
    lines = []
    for name in after.__dataclass_fields__:
        old, new = getattr(before.spec, name), getattr(after, name)
        if old == new:
            continue
        shown = str(new)
        if name == "host":
            shown += " (the check is recreated; the policy follows its new id)"
        lines.append(Change(resource, f"uptime check {name}", str(old), shown))
    return lines


def _rule_changes(rule_id: str, before: RuleState, change: RuleChange) -> tuple[Change, ...]:
    """The plan lines of one rule, all under ``alert policy RULE``: one creation line when
    nothing exists yet (naming the uptime check it comes with), else what differs."""
    resource = f"alert policy {rule_id}"
    lines: list[Change] = []
    check = change.uptime
    if before.policy is None and change.policy is not None:
        created = f"create {change.policy.display_name!r} ({change.policy.severity})"
        if check is not None and before.uptime is None:
            created += f" with its uptime check on {_where(check)}"
            check = None
        lines.append(Change(resource, "(policy)", NEW, created))
    elif before.policy is not None and change.policy is not None:
        lines += [
            Change(resource, field, _short(old), _short(new))
            for field, new, old in change.policy.differences(before.policy.spec)
        ]
    if check is not None:
        lines += _uptime_changes(resource, before.uptime, check)
    return tuple(lines)


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _policy_for(rule: AlertRule, values: dict[str, str]) -> Callable[[str], PolicySpec]:
    """The wanted policy for an uptime check id (``""`` when the check is not there yet)."""

    def build(check_id: str) -> PolicySpec:
        if rule.uptime is None:
            return policy_spec(rule, values, "")
        return policy_spec(rule, values, check_id or UPTIME_PLACEHOLDER)

    return build


def _rule_compute(
    rule: AlertRule, policy_for: Callable[[str], PolicySpec], host: str | None
) -> Callable[[RuleState], RuleChange | None]:
    """What the rule needs written; ``None`` when its policy and uptime check match. Without
    a known ``host`` an existing check keeps its own, and a missing one gets none (``""``)."""

    def compute(state: RuleState) -> RuleChange | None:
        check = None
        if rule.uptime is not None:
            kept = state.uptime.spec.host if state.uptime is not None else ""
            check = uptime_spec(rule, host or kept)
            if state.uptime is not None and state.uptime.spec == check:
                check = None
        policy: PolicySpec | None = policy_for(state.uptime.check_id if state.uptime else "")
        if state.policy is not None and state.policy.spec == policy:
            policy = None
        return None if policy is None and check is None else RuleChange(policy, check)

    return compute


def _rule_describer(
    rule_id: str,
) -> Callable[[RuleState, RuleChange], tuple[Change, ...]]:
    return lambda state, change: _rule_changes(rule_id, state, change)


def _mutations(
    api: MonitoringConfigApi,
    project: str,
    rules: tuple[AlertRule, ...],
    values: dict[str, str],
    host: str | None,
) -> tuple[Mutation[Any, Any], ...]:
    """One mutation per rule: its policy, with its uptime check when it has one."""
    mutations: list[Mutation[Any, Any]] = []
    for rule in rules:
        policy_for = _policy_for(rule, values)
        check = UptimeCheck(api, project, rule.id) if rule.uptime is not None else None
        mutations.append(
            Mutation(
                label=f"apply alert policy {rule.id}",
                resource=AlertRuleResources(AlertPolicy(api, project, rule.id), check, policy_for),
                compute=_rule_compute(rule, policy_for, host),
                describe=_rule_describer(rule.id),
            )
        )
    return tuple(mutations)


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
    """The action that makes the project's labelled policies (and the uptime check of a rule
    that has one) match ``rules_file``. When the check's host is unknown and the check does
    not exist yet, a dry run plans it without a host (with a notice) and a real run refuses
    (:class:`UsageError`) before anything is written."""
    rules = load_rules(rules_file)
    api = ctx.cloud.monitoring_config()
    project = _require_project(ctx)
    notices = _unmanaged_notice(api, project, rules)
    watched = [r.id for r in rules if r.uptime is not None]
    host = relay_host(ctx) if watched else None
    if watched and host is None:
        hostless = [r for r in watched if UptimeCheck(api, project, r).read() is None]
        if hostless:
            reason = _unknown_host(ctx, hostless)
            if not ctx.dry_run:
                raise UsageError(f"{reason}; nothing was changed")
            notices.append(f"{reason}; apply refuses to create the check without one")
    return Action(
        command=ctx.command,
        args={"project": project, "rules": str(rules_file), "rule_ids": [r.id for r in rules]},
        mutations=_mutations(api, project, rules, template_values(ctx), host),
        question=f"Apply the alert rules of {rules_file} to project {project}?",
        notices=tuple(notices),
        unchanged=f"all {len(rules)} alert policies already match {rules_file}; nothing written",
        done=f"the alert policies of project {project} now match {rules_file}",
    )


def plan_run(ctx: RunContext, rules_file: Path) -> ActionReport:
    """``alerts plan``: the changes ``apply`` would make; writes nothing, not the ledger."""
    dry = dataclasses.replace(ctx, dry_run=True)
    return execute(dry, alerts_action(dry, rules_file))


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
