"""``mlsgw rollback``, ``mlsgw traffic --to-latest``, ``mlsgw restart`` (R-K2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mlsgw.actions import (
    ActionContext,
    ActionSpec,
    latest_traffic,
    perform,
    pin_traffic,
    refuse_service,
    revisions_table,
    traffic_change,
)
from mlsgw.commands.common import ActionOptions, action_command, fail_early, run_action
from mlsgw.errors import Refused, UsageError
from mlsgw.gcp.base import Revision, ServiceChange, ServiceState
from mlsgw.report import ActionReport, Change, Status, Step


def choose_target(
    service: ServiceState, revisions: list[Revision], to: str | None, known_good: str | None
) -> tuple[Revision, str]:
    """The rollback target and why: ``--to``, else the ledger's last known good, else the
    newest Ready revision older than the one now serving. :class:`Refused` when none fits."""
    by_name = {r.name: r for r in revisions}
    serving = service.main_revision()
    if to is not None:
        chosen = by_name.get(to)
        if chosen is None:
            raise Refused(f"{to} is not a revision of this service")
        if not chosen.ready.ok:
            why = chosen.ready.message or chosen.ready.state
            raise Refused(f"{to} is not Ready ({why}); refusing to send traffic to it")
        return chosen, "given with --to"
    if known_good and known_good != serving:
        chosen = by_name.get(known_good)
        if chosen is not None and chosen.ready.ok:
            return chosen, "last known good revision in the ledger"
    current = by_name.get(serving or "")
    if current is None or current.created is None:
        raise Refused(f"cannot tell which revision is older than {serving}; use --to REVISION")
    cutoff = current.created
    older = [(r.created, r) for r in revisions if r.ready.ok and r.created and r.created < cutoff]
    if not older:
        raise Refused(f"no Ready revision older than {serving}; use --to REVISION")
    newest = max(older, key=lambda pair: pair[0])[1]
    return newest, f"newest Ready revision older than {serving}"


def rollback_run(ctx: ActionContext, to: str | None) -> ActionReport:
    """List revisions, choose the target, pin 100 % of traffic to it, verify health."""
    name = ctx.service_name
    ctx.reporter.step("reading the service and its revisions")
    service = ctx.run.get_service(name)
    revisions = ctx.run.list_revisions(name)
    table = revisions_table(service, revisions)
    args = {"to": to}
    try:
        chosen, why = choose_target(service, revisions, to, ctx.ledger.last_known_good(name))
    except Refused as exc:
        return refuse_service(
            ctx, "rollback", str(exc), args=args, service=service, tables=(table,)
        )
    after = pin_traffic(service, chosen.name)
    spec = ActionSpec(
        command="rollback",
        args={**args, "target_revision": chosen.name},
        service=service,
        plan=(traffic_change(name, service, after),),
        compute=lambda current: ServiceChange(traffic=pin_traffic(current, chosen.name)),
        question=f"Send 100% of traffic of {ctx.target.service} to {chosen.name}?",
        tables=(table,),
        steps=(Step("choose target", Status.OK, f"{chosen.name}: {why}"),),
        known_good=lambda _: chosen.name,
    )
    return perform(ctx, spec)


def traffic_run(ctx: ActionContext) -> ActionReport:
    """Send 100 % of traffic to the latest ready revision again (tags kept)."""
    service = ctx.run.get_service(ctx.service_name)
    after = latest_traffic(service)
    spec = ActionSpec(
        command="traffic",
        args={"to_latest": True},
        service=service,
        plan=(traffic_change(ctx.service_name, service, after),),
        compute=lambda current: ServiceChange(traffic=latest_traffic(current)),
        question=f"Send 100% of traffic of {ctx.target.service} to the latest ready revision?",
    )
    return perform(ctx, spec)


def restart_run(ctx: ActionContext, now: datetime | None = None) -> ActionReport:
    """A new revision from the same template with ``RESTART_TIME`` set (fresh instances)."""
    service = ctx.run.get_service(ctx.service_name)
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    notices: tuple[str, ...] = ()
    if service.pinned:
        notices = (
            f"Traffic is pinned to {service.main_revision()}: the new revision gets no traffic "
            "until `mlsgw traffic --to-latest`.",
        )
    spec = ActionSpec(
        command="restart",
        args={"restart_time": stamp},
        service=service,
        plan=(Change(ctx.service_name, "env RESTART_TIME", "(current)", stamp),),
        compute=lambda _: ServiceChange(env={"RESTART_TIME": stamp}),
        question=f"Restart {ctx.target.service} with a new revision?",
        notices=notices,
    )
    return perform(ctx, spec)


ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Revision to roll back to (default: last known good, else the "
        "newest Ready revision older than the serving one).",
    ),
]


@action_command
def rollback(
    to: ToOpt = None,
    *,
    options: ActionOptions,
) -> None:
    """Incident rollback: pin 100% of traffic to a good revision, keep tags, verify /health.

    Exit codes: 0 done (or dry run), 1 failed (e.g. /health fails after the change), 3 refused
    (target not Ready, not confirmed, no terminal and no --yes, no credentials, usage error).

    Example: mlsgw rollback --service mlsgw --dry-run
    """
    run_action("rollback", options, lambda ctx: rollback_run(ctx, to))


@action_command
def traffic(
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="Send 100% of traffic to the latest ready revision.")
    ] = False,
    *,
    options: ActionOptions,
) -> None:
    """Release pinned traffic after a rollback: `mlsgw traffic --to-latest`.

    Exit codes: 0 done (also: already on the latest revision), 1 failed, 3 refused (not
    confirmed, no terminal and no --yes, no credentials, usage error).

    Example: mlsgw traffic --to-latest --yes
    """
    if not to_latest:
        error = UsageError("give --to-latest (use `mlsgw rollback --to REV` to pin a revision)")
        fail_early("traffic", error, as_json=options.as_json)
    run_action("traffic", options, traffic_run)


@action_command
def restart(
    *,
    options: ActionOptions,
) -> None:
    """Restart every instance: a new revision with RESTART_TIME set, then verify /health.

    Exit codes: 0 done, 1 failed (the new revision is not Ready or /health fails), 3 refused
    (not confirmed, no terminal and no --yes, no credentials, usage error).

    Example: mlsgw restart --yes
    """
    run_action("restart", options, restart_run)
