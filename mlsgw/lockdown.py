"""``lockdown`` and ``lockdown --revert`` (R-K6): make the service private, keep the evidence.

Lockdown removes ``allUsers`` and ``allAuthenticatedUsers`` from ``roles/run.invoker`` and
sets ``invoker_iam_disabled`` false (the flag that makes a service public whatever its IAM
says, and that the runbook's own ``gcloud`` command forgets). The ledger line keeps the exact
pre-state (the policy with its etag, the flag, ingress), so ``--revert`` can restore it.
The last ``--evidence-hours`` of the service's logs go to an evidence directory with a
``SHA256SUMS`` manifest. Both directions are idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlsgw.errors import MlsgwError, Refused
from mlsgw.evidence import json_lines, write_evidence
from mlsgw.gcp.base import IamPolicy, ServiceChange, ServiceState
from mlsgw.report import ActionReport, Change, Outcome, Status, Step
from mlsgw.resources.base import Mutation
from mlsgw.resources.cloud_run_service import CloudRunService, only_changes, service_summary
from mlsgw.resources.service_iam_policy import ServiceIamPolicy
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, Trail, execute

INVOKER = "roles/run.invoker"
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
EVIDENCE_LOG_LIMIT = 50_000
"""Log entries written as evidence at most (the report says when there were more)."""
COMMAND = "lockdown"


def public_invokers(policy: IamPolicy) -> tuple[str, ...]:
    """The public members bound to ``roles/run.invoker``."""
    return tuple(m for m in policy.members_of(INVOKER) if m in PUBLIC_MEMBERS)


def locked_policy(policy: IamPolicy) -> IamPolicy | None:
    """The policy without public invokers; ``None`` when it has none."""
    if not public_invokers(policy):
        return None
    return policy.without(INVOKER, PUBLIC_MEMBERS)


def _roles(policy: IamPolicy) -> dict[str, tuple[str, ...]]:
    roles: dict[str, list[str]] = {}
    for binding in policy.bindings:
        roles.setdefault(binding.role, []).extend(binding.members)
    return {role: tuple(sorted(set(members))) for role, members in roles.items()}


def same_bindings(left: IamPolicy, right: IamPolicy) -> bool:
    """Both grant the same members the same roles (order and etag aside)."""
    return _roles(left) == _roles(right)


def policy_changes(name: str, before: IamPolicy, after: IamPolicy) -> tuple[Change, ...]:
    """One plan line per role whose members change."""
    old, new = _roles(before), _roles(after)
    return tuple(
        Change(
            name,
            role,
            ", ".join(old.get(role, ())) or "(none)",
            ", ".join(new.get(role, ())) or "(none)",
        )
        for role in sorted(set(old) | set(new))
        if old.get(role) != new.get(role)
    )


def _flag_change(name: str, service: ServiceState, change: ServiceChange) -> tuple[Change, ...]:
    lines = []
    if change.invoker_iam_disabled is not None:
        lines.append(
            Change(
                name,
                "invoker_iam_disabled",
                str(service.invoker_iam_disabled).lower(),
                str(change.invoker_iam_disabled).lower(),
            )
        )
    if change.ingress is not None and change.ingress != service.ingress:
        lines.append(Change(name, "ingress", service.ingress, change.ingress))
    return tuple(lines)


def _policy_mutation(
    ctx: RunContext, label: str, compute: Callable[[IamPolicy], IamPolicy | None]
) -> Mutation[IamPolicy, IamPolicy]:
    resource = ServiceIamPolicy(ctx.run, ctx.service_name)
    return Mutation(
        label,
        resource,
        compute,
        lambda before, after: policy_changes(resource.name, before, after),
        lambda written: (
            f"policy written with the etag it was read with; {INVOKER}: "
            f"{', '.join(written.members_of(INVOKER)) or '(none)'}"
        ),
    )


def _flag_mutation(
    ctx: RunContext, label: str, wanted: ServiceChange
) -> Mutation[ServiceState, ServiceChange]:
    resource = CloudRunService(ctx.run, ctx.service_name)
    return Mutation(
        label,
        resource,
        only_changes(lambda _: wanted),
        lambda service, change: _flag_change(resource.name, service, change),
        lambda after: (
            f"invoker_iam_disabled {str(after.invoker_iam_disabled).lower()}, "
            f"ingress {after.ingress}"
        ),
    )


def _collect_evidence(ctx: RunContext, trail: Trail, hours: float, directory: Path) -> str | None:
    """Write the logs of the last ``hours`` and the pre-state; the error text on failure."""
    target = ctx.target
    now = ctx.clock()
    since = now - timedelta(hours=hours)
    filter_ = (
        'resource.type="cloud_run_revision" '
        f'AND resource.labels.service_name="{target.service}" '
        f'AND timestamp>="{since:%Y-%m-%dT%H:%M:%SZ}"'
    )
    ctx.reporter.step(f"collecting {hours:g} h of logs as evidence")
    try:
        assert target.project is not None
        entries = ctx.cloud.logs().export_entries(target.project, filter_, EVIDENCE_LOG_LIMIT)
        truncated = len(entries) >= EVIDENCE_LOG_LIMIT
        about = {
            "run_id": ctx.run_id,
            "service": ctx.service_name,
            "collected_at": now.isoformat(timespec="seconds"),
            "logs_since": since.isoformat(timespec="seconds"),
            "log_filter": filter_,
            "log_entries": len(entries),
            "truncated": truncated,
        }
        evidence = write_evidence(
            directory,
            {
                "logs.jsonl": json_lines(entries),
                "iam-policy.json": _pretty(trail.before["iam_policy"].describe()),
                "service.json": _pretty(service_summary(trail.before["service"])),
                "lockdown.json": _pretty(about),
            },
        )
    except MlsgwError as exc:
        trail.steps.append(Step("evidence", Status.CRITICAL, str(exc)))
        return f"the evidence could not be collected: {exc}"
    more = f" (the first {EVIDENCE_LOG_LIMIT}; there are more)" if truncated else ""
    trail.steps.append(
        Step(
            "evidence",
            Status.OK,
            f"{len(entries)} log entries of the last {hours:g} h{more} and the pre-state in "
            f"{directory} (SHA256SUMS sha256 {evidence.manifest_sha256[:16]}…)",
        )
    )
    trail.result["evidence"] = {
        "directory": str(directory),
        "manifest_sha256": evidence.manifest_sha256,
        "files": dict(evidence.files),
        "log_entries": len(entries),
        "truncated": truncated,
    }
    return None


def _pretty(data: object) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _verify_state(
    ctx: RunContext,
    trail: Trail,
    policy_ok: Callable[[IamPolicy], bool],
    flag_ok: Callable[[ServiceState], bool],
    what: str,
) -> tuple[Outcome, str]:
    ctx.reporter.step("reading the policy and the service back")
    policy = ctx.run.get_iam_policy(ctx.service_name)
    service = ctx.run.get_service(ctx.service_name)
    if policy_ok(policy) and flag_ok(service):
        trail.steps.append(Step("verify", Status.OK, f"read back: {what}"))
        return Outcome.DONE, f"done: {what}"
    trail.steps.append(Step("verify", Status.CRITICAL, f"read back: not {what}"))
    return Outcome.FAILED, f"the changes were written, but the service is not {what}"


def lockdown_run(ctx: RunContext, evidence_hours: float, evidence_dir: Path) -> ActionReport:
    """Remove public invokers, set ``invoker_iam_disabled`` false, collect evidence."""
    locked = "locked down: no public invoker, invoker_iam_disabled false"

    def verify(ctx: RunContext, trail: Trail) -> tuple[Outcome, str]:
        trail.notices.append(
            f"Undo: `mlsgw lockdown --revert {ctx.run_id}` restores the saved policy and flag."
        )
        return _verify_state(
            ctx,
            trail,
            lambda policy: not public_invokers(policy),
            lambda service: not service.invoker_iam_disabled,
            locked,
        )

    action = Action(
        command=COMMAND,
        args={"evidence_hours": evidence_hours, "evidence_dir": str(evidence_dir)},
        mutations=(
            _policy_mutation(ctx, "remove public invokers", locked_policy),
            _flag_mutation(
                ctx, "require IAM for invokers", ServiceChange(invoker_iam_disabled=False)
            ),
        ),
        question=f"Lock down {ctx.target.service}: only IAM-authorised callers may invoke it?",
        unchanged=f"already {locked}; nothing written",
        finish=lambda ctx, trail: _collect_evidence(ctx, trail, evidence_hours, evidence_dir),
        finish_label="collect evidence",
        verify=verify,
    )
    return execute(ctx, action)


def find_lockdown(
    records: list[dict[str, Any]], service_name: str, run_id: str | None
) -> dict[str, Any]:
    """The lockdown to revert: run ``run_id``, else the newest lockdown of the service that
    changed something (one that found the service already locked saved a locked pre-state).
    A lockdown that failed after changing something (e.g. its evidence) counts: its changes
    stand. :class:`Refused` when there is none."""
    for entry in reversed(records):
        args = entry.get("args") or {}
        result = entry.get("result") or {}
        pre = entry.get("pre_state") or {}
        if (
            entry.get("command") == COMMAND
            and args.get("service_name") == service_name
            and not args.get("revert_of")
            and result.get("outcome") in ("done", "failed")
            and isinstance(pre, dict)
            and "iam_policy" in pre
            and (entry.get("run_id") == run_id if run_id else "post_state" in result)
        ):
            found: dict[str, Any] = entry
            return found
    which = f"lockdown {run_id}" if run_id else "a lockdown that changed something"
    raise Refused(f"the ledger has no record of {which} of {service_name}; nothing to revert")


def revert_run(ctx: RunContext, run_id: str | None) -> ActionReport:
    """Restore the exact IAM bindings, ``invoker_iam_disabled`` and ingress a lockdown saved."""
    ctx.reporter.step("finding the lockdown in the ledger")
    entry = find_lockdown(ctx.ledger.records(), ctx.service_name, run_id)
    reverted = str(entry["run_id"])
    pre: Mapping[str, Any] = entry["pre_state"]
    saved = IamPolicy.from_description(pre["iam_policy"])
    flag = bool(pre["service"]["invoker_iam_disabled"])
    ingress = str(pre["service"].get("ingress") or "all")

    def restore(current: IamPolicy) -> IamPolicy | None:
        if same_bindings(current, saved):
            return None
        return IamPolicy(saved.bindings, current.etag, saved.version)

    notices = []
    post = ((entry.get("result") or {}).get("post_state") or {}).get("iam_policy")
    if post is not None:
        after_lockdown = IamPolicy.from_description(post)
        current = ctx.run.get_iam_policy(ctx.service_name)
        if not same_bindings(current, after_lockdown):
            notices.append(
                f"The policy changed after lockdown {reverted}; restoring the saved policy "
                "undoes those changes too (see the plan)."
            )
    restored = f"restored to the state before lockdown {reverted}"
    action = Action(
        command=COMMAND,
        args={"revert_of": reverted},
        mutations=(
            _policy_mutation(ctx, "restore the IAM policy", restore),
            _flag_mutation(
                ctx,
                "restore invoker_iam_disabled and ingress",
                ServiceChange(invoker_iam_disabled=flag, ingress=ingress),
            ),
        ),
        question=f"Restore the public access of {ctx.target.service} saved by lockdown {reverted}?",
        unchanged=f"already as before lockdown {reverted}; nothing written",
        steps=(Step("find lockdown", Status.OK, f"{reverted} at {entry.get('time')}"),),
        notices=tuple(notices),
        verify=lambda ctx, trail: _verify_state(
            ctx,
            trail,
            lambda policy: same_bindings(policy, saved),
            lambda service: service.invoker_iam_disabled == flag and service.ingress == ingress,
            restored,
        ),
    )
    return execute(ctx, action)
