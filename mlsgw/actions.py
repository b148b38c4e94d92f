"""Cloud Run service actions (rollback, traffic, restart, deploy, scale) on the runbook engine.

The commands decide *what* to change (an :class:`ActionSpec` computed from the service as
read); :func:`perform` turns it into an engine :class:`~mlsgw.runbook.engine.Action` over the
:class:`~mlsgw.resources.cloud_run_service.CloudRunService` resource, whose verification is
the runbook's: up to three ``/health`` checks, the last known good revision recorded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC

from mlsgw.errors import MlsgwError, OperationFailed
from mlsgw.gcp.base import (
    Revision,
    ServiceChange,
    ServiceState,
    TrafficKind,
    TrafficTarget,
)
from mlsgw.ledger import KNOWN_GOOD_KEY
from mlsgw.probes import probe_health
from mlsgw.report import ActionReport, Change, Outcome, Status, Step, Table
from mlsgw.resources.base import Mutation
from mlsgw.resources.cloud_run_service import CloudRunService, only_changes, service_summary
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, Trail, execute, refusal_code, refuse, write

__all__ = [
    "ActionContext",
    "PINNED_NOTICE",
    "ActionSpec",
    "Trail",
    "perform",
    "refusal_code",
    "refuse_service",
    "verify_health",
    "write_service",
]

ActionContext = RunContext
"""The context of a service action is the engine's :class:`RunContext`."""
HEALTH_ATTEMPTS = 3
"""The runbook's automatic-rollback trigger: 3 consecutive failed health checks."""
PINNED_NOTICE = "traffic is now pinned; `mlsgw traffic --to-latest` to release"
"""The notice, in the runbook's words, after a change that leaves traffic pinned to a revision."""


@dataclass(frozen=True)
class ActionSpec:
    """What one service action wants to change, computed from the service as read."""

    command: str
    args: Mapping[str, object]
    service: ServiceState
    plan: tuple[Change, ...]
    compute: Callable[[ServiceState], ServiceChange]
    """Called again on fresh state after a concurrent change."""
    question: str
    tables: tuple[Table, ...] = ()
    steps: tuple[Step, ...] = ()
    notices: tuple[str, ...] = ()
    health_url: Callable[[ServiceState], str | None] | None = None
    """Where to verify health after the write (default: --url or the service URL)."""
    known_good: Callable[[ServiceState], str | None] | None = None
    """The revision to record as last known good once health is verified."""


state_summary = service_summary


def describe_traffic(traffic: tuple[TrafficTarget, ...]) -> str:
    """``api-0002 100%, LATEST 0% tag=canary``."""
    return ", ".join(t.describe() for t in traffic) or "(none)"


def traffic_change(name: str, service: ServiceState, after: tuple[TrafficTarget, ...]) -> Change:
    """The plan line for moving the traffic of ``service`` (full name ``name``) to ``after``."""
    return Change(name, "traffic", describe_traffic(service.traffic), describe_traffic(after))


def spec_traffic(service: ServiceState) -> tuple[TrafficTarget, ...]:
    """The traffic split as written (status-only tag URLs dropped), to compare with a change."""
    return tuple(dataclasses.replace(t, uri=None) for t in service.traffic)


def revisions_table(service: ServiceState, revisions: list[Revision]) -> Table:
    """Revisions with their traffic, tags, readiness and creation time, newest first."""
    split = service.serving()
    tags: dict[str, list[str]] = {}
    for t in service.traffic:
        name = t.revision if t.kind is TrafficKind.REVISION else service.latest_ready_revision
        if t.tag and name:
            tags.setdefault(name, []).append(t.tag)
    rows = tuple(
        (
            r.name,
            f"{split.get(r.name, 0)}%",
            ",".join(tags.get(r.name, [])),
            "yes" if r.ready.ok else f"no: {r.ready.message or r.ready.state}"[:60],
            f"{r.created.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if r.created else "",
            r.image or "",
        )
        for r in revisions
    )
    return Table("Revisions", ("revision", "traffic", "tags", "ready", "created", "image"), rows)


def tagged_only(
    traffic: tuple[TrafficTarget, ...], drop_tag: str | None = None
) -> list[TrafficTarget]:
    """The tagged targets at 0 % (tags keep their URLs when traffic moves)."""
    return [
        dataclasses.replace(t, percent=0, uri=None) for t in traffic if t.tag and t.tag != drop_tag
    ]


def pin_traffic(service: ServiceState, revision: str) -> tuple[TrafficTarget, ...]:
    """100 % to ``revision``, every tag kept (a tag already on it carries the 100 %)."""
    kept = tagged_only(service.traffic)
    for i, t in enumerate(kept):
        if t.kind is TrafficKind.REVISION and t.revision == revision:
            kept[i] = dataclasses.replace(t, percent=100)
            return tuple(kept)
    return (TrafficTarget(TrafficKind.REVISION, 100, revision), *kept)


def latest_traffic(service: ServiceState) -> tuple[TrafficTarget, ...]:
    """100 % to LATEST, every tag kept."""
    return (TrafficTarget(TrafficKind.LATEST, 100), *tagged_only(service.traffic))


def write_service(
    ctx: RunContext, compute: Callable[[ServiceState], ServiceChange]
) -> tuple[ServiceState, int]:
    """Read-modify-write of the service guarded by its etag, outside an action (e.g. the
    automatic rollback after a failed deploy); recomputed on a concurrent change."""
    resource = CloudRunService(ctx.run, ctx.service_name)
    current = resource.read()
    mutation: Mutation[ServiceState, ServiceChange] = Mutation(
        "write", resource, compute, lambda state, change: ()
    )
    return write(ctx, mutation, current, compute(current))


def verify_health(ctx: RunContext, url: str | None) -> Step:
    """Up to :data:`HEALTH_ATTEMPTS` ``/health`` probes; ok at the first healthy answer."""
    if not url:
        return Step("verify /health", Status.SKIPPED, "no URL known for the service")
    failures = []
    for attempt in range(1, HEALTH_ATTEMPTS + 1):
        ctx.reporter.step(f"checking {url}/health ({attempt}/{HEALTH_ATTEMPTS})")
        probe = probe_health(url, ctx.target.timeout)
        if probe.ok:
            return Step("verify /health", Status.OK, f"healthy, version {probe.version}")
        failures.append(probe.detail)
        if attempt < HEALTH_ATTEMPTS:
            time.sleep(ctx.health_interval)
    return Step(
        "verify /health",
        Status.CRITICAL,
        f"{HEALTH_ATTEMPTS} consecutive failures at {url}/health: {failures[-1]}",
    )


Unhealthy = Callable[[RunContext, ServiceState, Trail], None]


def perform(
    ctx: RunContext, spec: ActionSpec, on_unhealthy: Unhealthy | None = None
) -> ActionReport:
    """Run ``spec`` on the engine: validate or confirm, write, wait, verify /health, record."""
    resource = CloudRunService(ctx.run, ctx.service_name)

    def applied(after: ServiceState) -> str:
        return f"generation {after.generation}: {describe_traffic(after.traffic)}"

    def verify(ctx: RunContext, trail: Trail) -> tuple[Outcome, str]:
        after: ServiceState = trail.after["service"]
        url = spec.health_url(after) if spec.health_url else (ctx.target.url or after.uri or None)
        health = verify_health(ctx, url)
        trail.steps.append(health)
        if health.status is Status.CRITICAL:
            if on_unhealthy is not None:
                on_unhealthy(ctx, after, trail)
                return Outcome.FAILED, str(trail.result.get("state", "health check failed"))
            return (
                Outcome.FAILED,
                f"the change is applied ({describe_traffic(after.traffic)}) but /health fails",
            )
        good = spec.known_good(after) if spec.known_good else after.main_revision()
        if good and health.status is Status.OK:
            trail.result[KNOWN_GOOD_KEY] = good
        if after.pinned:
            trail.notices.append(f"{PINNED_NOTICE} (pinned to {after.main_revision()}).")
        return Outcome.DONE, f"done: {describe_traffic(after.traffic)}"

    def on_failure(ctx: RunContext, trail: Trail, exc: MlsgwError) -> str:
        if isinstance(exc, OperationFailed):  # accepted, then failed (new revision never Ready)
            if on_unhealthy is not None:
                on_unhealthy(ctx, ctx.run.get_service(ctx.service_name), trail)
                return str(trail.result.get("state", exc))
            return f"the update failed; {_state_now(ctx)}"
        return f"the update was not applied; {_state_now(ctx)}"

    action = Action(
        command=spec.command,
        args=spec.args,
        mutations=(
            Mutation("update", resource, only_changes(spec.compute), lambda s, c: (), applied),
        ),
        question=spec.question,
        plan=spec.plan,
        tables=spec.tables,
        steps=spec.steps,
        notices=spec.notices,
        unchanged=f"nothing to change: {describe_traffic(spec.service.traffic)}",
        verify=verify,
        on_failure=on_failure,
    )
    return execute(ctx, action)


def refuse_service(
    ctx: RunContext,
    command: str,
    reason: str,
    *,
    args: Mapping[str, object],
    service: ServiceState | None = None,
    tables: tuple[Table, ...] = (),
) -> ActionReport:
    """A refusal before anything changed (exit 3), with the service's state in the ledger."""
    pre = {"service": service_summary(service)} if service else None
    return refuse(ctx, command, reason, args=args, pre_state=pre, tables=tables)


def _state_now(ctx: RunContext) -> str:
    try:
        now = ctx.run.get_service(ctx.service_name)
    except MlsgwError:
        return "the service's state could not be read back; check it in the console"
    return f"traffic now: {describe_traffic(now.traffic)}"
