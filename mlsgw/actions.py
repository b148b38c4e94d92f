"""How every service-changing runbook action runs (R-O4, R-O5).

read → plan → ``--dry-run`` (server-side ``validate_only``) or confirm → etag-guarded write
with retry on conflict → wait for the operation → verify ``/health`` → ledger line.
The commands (rollback, traffic, restart, deploy, scale) only decide *what* to change.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsgw.errors import (
    CloudError,
    Conflict,
    MlsgwError,
    NoCredentials,
    NotFound,
    OperationFailed,
    PermissionDenied,
    Refused,
    UsageError,
)
from mlsgw.gcp.base import (
    CloudRunApi,
    Revision,
    ServiceChange,
    ServiceState,
    TrafficKind,
    TrafficTarget,
)
from mlsgw.ledger import KNOWN_GOOD_KEY, Ledger
from mlsgw.probes import probe_health
from mlsgw.report import ActionReport, Change, Outcome, Reporter, Status, Step, Table
from mlsgw.target import Target

WRITE_ATTEMPTS = 5
HEALTH_ATTEMPTS = 3
"""The runbook's automatic-rollback trigger: 3 consecutive failed health checks."""


@dataclass(frozen=True)
class ActionContext:
    """Everything an action needs, built by the command."""

    target: Target
    run: CloudRunApi
    ledger: Ledger
    reporter: Reporter
    run_id: str
    confirm: Callable[[str], None]
    """Asks the question; raises :class:`~mlsgw.errors.Refused` when not confirmed."""
    dry_run: bool = False
    health_interval: float = 10.0

    @property
    def service_name(self) -> str:
        """The full Cloud Run service name."""
        return self.target.service_name


@dataclass(frozen=True)
class ActionSpec:
    """What one action wants to change, computed from the service as read."""

    command: str
    args: Mapping[str, object]
    service: ServiceState
    plan: tuple[Change, ...]
    compute: Callable[[ServiceState], ServiceChange]
    """Called again on every write attempt with the freshly read service."""
    question: str
    tables: tuple[Table, ...] = ()
    steps: tuple[Step, ...] = ()
    notices: tuple[str, ...] = ()
    health_url: Callable[[ServiceState], str | None] | None = None
    """Where to verify health after the write (default: --url or the service URL)."""
    known_good: Callable[[ServiceState], str | None] | None = None
    """The revision to record as last known good once health is verified."""


@dataclass
class Trail:
    """What happened so far in :func:`perform` (steps appended as they happen)."""

    steps: list[Step] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def state_summary(service: ServiceState) -> dict[str, object]:
    """The pre/post state written to the ledger."""
    return {
        "etag": service.etag,
        "generation": service.generation,
        "traffic": [t.describe() for t in service.traffic],
        "serving": service.serving(),
        "latest_ready_revision": service.latest_ready_revision,
        "image": service.image,
        "scaling": dataclasses.asdict(service.scaling),
    }


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
            f"{r.created:%Y-%m-%d %H:%M}" if r.created else "",
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
    ctx: ActionContext, compute: Callable[[ServiceState], ServiceChange]
) -> tuple[ServiceState, int]:
    """Read-modify-write guarded by the etag; on a conflict read again and recompute."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        current = ctx.run.get_service(ctx.service_name)
        try:
            after = ctx.run.update_service(ctx.service_name, compute(current), etag=current.etag)
            return after, attempt - 1
        except Conflict:
            ctx.reporter.step(f"the service changed concurrently; reading it again ({attempt})")
    raise Conflict(
        f"{ctx.service_name} kept changing concurrently ({WRITE_ATTEMPTS} attempts); "
        "nothing of this action was applied — retry when the other change is done"
    )


def verify_health(ctx: ActionContext, url: str | None) -> Step:
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


def refusal_code(exc: MlsgwError) -> Outcome:
    """Errors before anything changed: preconditions are refusals (3), the rest failures (1)."""
    precondition = (Refused, UsageError, NoCredentials, PermissionDenied, NotFound)
    return Outcome.REFUSED if isinstance(exc, precondition) else Outcome.FAILED


def record(
    ctx: ActionContext,
    report: ActionReport,
    args: Mapping[str, object],
    pre_state: object,
    result: Mapping[str, Any],
) -> None:
    """Append the action's ledger line (never for dry runs)."""
    if report.outcome is Outcome.PLANNED:
        return
    ctx.ledger.append(
        command=report.command,
        run_id=report.run_id,
        args={"service_name": ctx.service_name, **args},
        plan=[vars(c) for c in report.plan],
        pre_state=pre_state,
        result={"outcome": report.outcome.value, "summary": report.summary, **result},
    )


def perform(
    ctx: ActionContext,
    spec: ActionSpec,
    on_unhealthy: Callable[[ActionContext, ServiceState, Trail], None] | None = None,
) -> ActionReport:
    """Dry-run or confirm, write, wait, verify; the report and its ledger line."""
    out = Trail(steps=list(spec.steps), notices=list(spec.notices))
    pre_state = state_summary(spec.service)

    def report(outcome: Outcome, summary: str) -> ActionReport:
        done = ActionReport(
            command=spec.command,
            outcome=outcome,
            summary=summary,
            run_id=ctx.run_id,
            plan=spec.plan,
            steps=tuple(out.steps),
            tables=spec.tables,
            notices=tuple(out.notices),
            data={"result": out.result},
        )
        record(ctx, done, spec.args, pre_state, out.result)
        return done

    change = spec.compute(spec.service)
    if not change.creates_revision and change.traffic == spec_traffic(spec.service):
        out.steps.append(Step("compare", Status.OK, "the service already looks like this"))
        return report(Outcome.DONE, f"nothing to change: {describe_traffic(spec.service.traffic)}")
    if ctx.dry_run:
        ctx.reporter.step("validating the change with Cloud Run (validate_only)")
        ctx.run.update_service(ctx.service_name, change, etag=spec.service.etag, validate_only=True)
        out.steps.append(Step("validate", Status.OK, "accepted by Cloud Run (validate_only)"))
        return report(Outcome.PLANNED, "dry run: the plan above was validated; nothing was changed")
    try:
        ctx.confirm(spec.question)
    except Refused as exc:
        out.steps.append(Step("confirm", Status.SKIPPED, str(exc)))
        return report(Outcome.REFUSED, str(exc))
    ctx.reporter.step("updating the service")
    try:
        after, conflicts = write_service(ctx, spec.compute)
    except OperationFailed as exc:  # accepted, then failed (e.g. the new revision never Ready)
        out.steps.append(Step("update", Status.CRITICAL, str(exc)))
        out.result["error"] = str(exc)
        if on_unhealthy is not None:
            on_unhealthy(ctx, ctx.run.get_service(ctx.service_name), out)
            return report(Outcome.FAILED, str(out.result.get("state", exc)))
        return report(Outcome.FAILED, f"the update failed; {_state_now(ctx)}")
    except CloudError as exc:
        out.steps.append(Step("update", Status.CRITICAL, str(exc)))
        out.result["error"] = str(exc)
        return report(Outcome.FAILED, f"the update was not applied; {_state_now(ctx)}")
    retried = f", {conflicts} concurrent change(s) re-read and retried" if conflicts else ""
    applied = f"generation {after.generation}: {describe_traffic(after.traffic)}{retried}"
    out.steps.append(Step("update", Status.OK, applied))
    out.result["post_state"] = state_summary(after)
    url = spec.health_url(after) if spec.health_url else (ctx.target.url or after.uri or None)
    health = verify_health(ctx, url)
    out.steps.append(health)
    if health.status is Status.CRITICAL:
        if on_unhealthy is not None:
            on_unhealthy(ctx, after, out)
            return report(Outcome.FAILED, str(out.result.get("state", "health check failed")))
        return report(
            Outcome.FAILED,
            f"the change is applied ({describe_traffic(after.traffic)}) but /health fails",
        )
    good = spec.known_good(after) if spec.known_good else after.main_revision()
    if good and health.status is Status.OK:
        out.result[KNOWN_GOOD_KEY] = good
    if after.pinned:
        out.notices.append(
            f"Traffic is now pinned to {after.main_revision()}; "
            "`mlsgw traffic --to-latest` to release it."
        )
    return report(Outcome.DONE, f"done: {describe_traffic(after.traffic)}")


def refuse(
    ctx: ActionContext,
    command: str,
    reason: str,
    *,
    args: Mapping[str, object],
    service: ServiceState | None = None,
    tables: tuple[Table, ...] = (),
) -> ActionReport:
    """A refusal before anything changed (exit 3), with its ledger line."""
    done = ActionReport(command, Outcome.REFUSED, reason, ctx.run_id, tables=tables)
    record(ctx, done, args, state_summary(service) if service else None, {})
    return done


def _state_now(ctx: ActionContext) -> str:
    try:
        now = ctx.run.get_service(ctx.service_name)
    except MlsgwError:
        return "the service's state could not be read back; check it in the console"
    return f"traffic now: {describe_traffic(now.traffic)}"
