"""The emergency modes (R-C3): ``mlsgw readonly on|off`` and ``mlsgw maintenance-mode on|off``.

Each flips one relay setting on the Cloud Run service through its environment variable
(``MLSGW_LIMITATION__READ_ONLY``, ``MLSGW_INFORMATION__MAINTENANCE`` and its message), which
Cloud Run turns into a new revision. A new revision only serves when traffic follows LATEST:
while traffic is pinned to an older revision (after a rollback) the toggle refuses, naming
the pinned revision, unless ``--move-traffic`` asks it to send the traffic to the new
revision, which it then does in the same update and says so. It refuses that too when the
new revision would run another image than the pinned one (the template is the latest
revision's, so the mode would come with the image the rollback moved away from).

In maintenance mode the relay's ``/health`` answers 503, so a new revision whose startup
probe is ``GET /health`` would never become Ready: ``maintenance-mode on`` switches such a
probe to a TCP probe of the same port in the same update, and ``off`` switches it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from mlsgw.actions import describe_traffic, latest_traffic, refuse_service, verify_health
from mlsgw.gcp.base import (
    HEALTH_PATH,
    ProbeKind,
    Revision,
    ServiceChange,
    ServiceState,
    StartupProbe,
)
from mlsgw.probes import probe_health
from mlsgw.report import ActionReport, Change, Outcome, Status, Step
from mlsgw.resources.base import Mutation
from mlsgw.resources.cloud_run_service import CloudRunService
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, Trail, execute

READ_ONLY_ENV = "MLSGW_LIMITATION__READ_ONLY"
MAINTENANCE_ENV = "MLSGW_INFORMATION__MAINTENANCE"
MESSAGE_ENV = "MLSGW_INFORMATION__MAINTENANCE_MESSAGE"
TRUE = "true"
FALSE = "false"
PROBE_TO_TCP = (
    "/health answers 503 in maintenance mode, so the new revision's startup probe checks "
    "the port instead"
)
PROBE_TO_HEALTH = (
    "/health answers 200 again out of maintenance mode, so the new revision's startup probe "
    "is GET /health again"
)


@dataclass(frozen=True)
class Mode:
    """One emergency mode: its command, the env var that switches it, what it does."""

    command: str
    env: str
    what: str
    """What the relay does in this mode (for the question and the report)."""


READ_ONLY = Mode(
    "readonly",
    READ_ONLY_ENV,
    "every EVENT is refused with `blocked: relay is read-only for maintenance`; reads work",
)
MAINTENANCE = Mode(
    "maintenance-mode",
    MAINTENANCE_ENV,
    "new connections get the maintenance NOTICE and are closed, the REST API and /health "
    "answer 503 maintenance",
)


def is_on(value: str | None) -> bool:
    """How the relay's config loader reads a boolean env value (unset: off)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def wanted_env(mode: Mode, on: bool, message: str | None) -> dict[str, str]:
    """The environment variables that put the relay in (or out of) ``mode``."""
    env = {mode.env: TRUE if on else FALSE}
    if message is not None:
        env[MESSAGE_ENV] = message
    return env


def env_changes(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``wanted`` whose value differs from ``current`` (``false`` and unset
    are the same for the switch itself, so turning off an unset mode changes nothing)."""
    changed = {}
    for name, value in wanted.items():
        now = current.get(name)
        same = (
            is_on(now) == is_on(value) if name in (READ_ONLY_ENV, MAINTENANCE_ENV) else now == value
        )
        if not same:
            changed[name] = value
    return changed


def _cloud_run_default(probe: StartupProbe) -> bool:
    """The TCP probe Cloud Run gives a container that sets none (one try, 240 s)."""
    return probe.kind is ProbeKind.TCP and (
        probe.period_seconds,
        probe.timeout_seconds,
        probe.failure_threshold,
    ) == (240, 240, 1)


def probe_change(mode: Mode, on: bool, service: ServiceState) -> StartupProbe | None:
    """The startup probe the toggle writes beside its env var, or ``None`` to leave it.

    Only maintenance mode touches it (its ``/health`` answers 503): ``on`` turns a
    ``GET /health`` probe into a TCP probe of the same port with the same timing; ``off``,
    while the mode is on, turns such a TCP probe back into ``GET /health``. A probe on
    another path, a gRPC probe, Cloud Run's own default TCP probe and a missing probe are
    never touched."""
    probe = service.startup_probe
    if mode is not MAINTENANCE or probe is None:
        return None
    if on and probe.kind is ProbeKind.HTTP and probe.path == HEALTH_PATH:
        return dataclasses.replace(probe, kind=ProbeKind.TCP, path=None)
    in_maintenance = is_on(service.plain_env().get(MAINTENANCE_ENV))
    if not on and in_maintenance and probe.kind is ProbeKind.TCP and not _cloud_run_default(probe):
        return dataclasses.replace(probe, kind=ProbeKind.HTTP, path=HEALTH_PATH)
    return None


def traffic_problem(
    service: ServiceState, revisions: list[Revision], move_traffic: bool
) -> str | None:
    """Why a new revision of ``service`` would serve nobody and cannot be fixed here, or
    ``None`` (traffic follows LATEST, or ``move_traffic`` may move it safely)."""
    if not service.pinned:
        return None
    pinned = service.main_revision() or "an older revision"
    if not move_traffic:
        return (
            f"traffic is pinned to {pinned}, so the new revision would serve nobody; "
            "rerun with --move-traffic to send 100% of traffic to it (tags kept), "
            "or release the pin first with `mlsgw traffic --to-latest`"
        )
    images = {r.name: r.image for r in revisions}
    serving_image = images.get(pinned)
    if serving_image is not None and service.image is not None and serving_image != service.image:
        return (
            f"traffic is pinned to {pinned} ({serving_image}), but a new revision would run "
            f"the service's template image {service.image}; deploy {serving_image} first "
            f"(`mlsgw deploy --image {serving_image}`), then switch the mode"
        )
    return None


def _plan(name: str, service: ServiceState, change: ServiceChange) -> tuple[Change, ...]:
    lines = [
        Change(name, f"env {key}", service.plain_env().get(key, "(unset)"), value)
        for key, value in sorted((change.env or {}).items())
    ]
    if change.startup_probe is not None:
        before = service.startup_probe.describe() if service.startup_probe else "(none)"
        lines.append(Change(name, "startup probe", before, change.startup_probe.describe()))
    if change.traffic is not None:
        lines.append(
            Change(
                name, "traffic", describe_traffic(service.traffic), describe_traffic(change.traffic)
            )
        )
    return tuple(lines)


def _check_serving(ctx: RunContext, mode: Mode, on: bool, after: ServiceState) -> Step:
    """The serving revision answers as the mode says: in maintenance /health is 503
    ``maintenance`` (any other answer is a failure); otherwise the usual health check."""
    url = ctx.target.url or after.uri or None
    if mode is not MAINTENANCE or not on:
        return verify_health(ctx, url)
    if not url:
        return Step("verify /health", Status.SKIPPED, "no URL known for the service")
    ctx.reporter.step(f"checking {url}/health")
    probe = probe_health(url, ctx.target.timeout)
    if probe.status_code == 503 and "status maintenance" in probe.detail:
        return Step("verify /health", Status.OK, "503 maintenance, as the mode says")
    return Step("verify /health", Status.CRITICAL, f"expected 503 maintenance, got {probe.detail}")


def toggle_run(
    ctx: RunContext, mode: Mode, on: bool, *, message: str | None = None, move_traffic: bool = False
) -> ActionReport:
    """Switch ``mode`` on or off with a new revision carrying its env var; never reports a
    change that serves nobody (refused, or the traffic moved with ``move_traffic``)."""
    word = "on" if on else "off"
    args: dict[str, object] = {"mode": mode.command, "state": word, "move_traffic": move_traffic}
    if message is not None:
        args["message"] = message
    ctx.reporter.step("reading the service and its revisions")
    service = ctx.run.get_service(ctx.service_name)
    wanted = wanted_env(mode, on, message)
    probe = probe_change(mode, on, service)
    problem = None
    if env_changes(service.plain_env(), wanted) or probe is not None or service.pinned:
        problem = traffic_problem(service, ctx.run.list_revisions(ctx.service_name), move_traffic)
    if problem is not None:
        reason = f"{mode.command} {word} refused: {problem}"
        return refuse_service(ctx, mode.command, reason, args=args, service=service)
    resource = CloudRunService(ctx.run, ctx.service_name)

    def compute(current: ServiceState) -> ServiceChange | None:
        env = env_changes(current.plain_env(), wanted)
        probe = probe_change(mode, on, current)
        traffic = latest_traffic(current) if current.pinned and move_traffic else None
        if not env and probe is None and traffic is None:
            return None
        # A traffic move alone re-points LATEST, which already carries the mode's env var.
        return ServiceChange(env=env or None, startup_probe=probe, traffic=traffic)

    def verify(ctx: RunContext, trail: Trail) -> tuple[Outcome, str]:
        after: ServiceState = trail.after["service"]
        if after.pinned:
            trail.steps.append(
                Step("traffic", Status.CRITICAL, "still pinned: " + describe_traffic(after.traffic))
            )
            return (
                Outcome.FAILED,
                "the new revision was created but serves nobody: "
                + describe_traffic(after.traffic),
            )
        if service.pinned:
            trail.notices.append(
                f"Traffic moved from {service.main_revision()} to the new revision "
                f"{after.latest_ready_revision} (LATEST 100%), so the mode takes effect."
            )
        health = _check_serving(ctx, mode, on, after)
        trail.steps.append(health)
        if health.status is Status.CRITICAL:
            return Outcome.FAILED, f"{mode.command} {word} applied, but {health.detail}"
        undo = "off" if on else "on"
        trail.notices.append(f"Undo: `mlsgw {mode.command} {undo}`.")
        return Outcome.DONE, f"{mode.command} is {word} on {after.latest_ready_revision}: " + (
            mode.what if on else "the relay accepts writes and connections again"
        )

    mutation: Mutation[ServiceState, ServiceChange] = Mutation(
        f"{mode.command} {word}",
        resource,
        compute,
        lambda state, change: _plan(resource.name, state, change),
        lambda after: f"revision {after.latest_ready_revision}: {describe_traffic(after.traffic)}",
    )
    notices: tuple[str, ...] = ()
    if probe is not None and service.startup_probe is not None:
        why = PROBE_TO_TCP if on else PROBE_TO_HEALTH
        notices = (
            f"Startup probe {service.startup_probe.describe()} -> {probe.describe()}: {why}.",
        )
    action = Action(
        command=mode.command,
        args=args,
        mutations=(mutation,),
        notices=notices,
        question=(
            f"Turn {mode.command} {word} on {ctx.target.service} (a new revision)?"
            + (f" In this mode {mode.what}." if on else "")
        ),
        unchanged=f"{mode.command} is already {word}; nothing written",
        verify=verify,
    )
    return execute(ctx, action)
