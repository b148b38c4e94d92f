"""``mlsgw deploy --image`` (``--create`` for the first one) with automatic rollback, and
``mlsgw scale``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from mlsgw.actions import (
    ActionContext,
    ActionSpec,
    Trail,
    latest_traffic,
    perform,
    pin_traffic,
    spec_traffic,
    traffic_change,
    verify_health,
    write_service,
)
from mlsgw.commands.common import ActionOptions, action_command, fail_early, run_action
from mlsgw.create import create_run
from mlsgw.errors import CloudError, NotFound, Refused, UsageError
from mlsgw.gcp.base import (
    NewService,
    ServiceChange,
    ServiceState,
    TrafficKind,
    TrafficTarget,
)
from mlsgw.report import ActionReport, Change, Status, Step


def no_traffic_split(service: ServiceState, revision: str, tag: str) -> tuple[TrafficTarget, ...]:
    """Today's split pinned to named revisions, plus ``tag`` on the new revision at 0 %."""
    pinned: list[TrafficTarget] = []
    shares: dict[str, int] = {}
    for t in service.traffic:
        if t.tag == tag:
            continue  # the tag moves to the new revision
        if t.kind is TrafficKind.LATEST:
            if t.percent and service.latest_ready_revision:
                rev = service.latest_ready_revision
                shares[rev] = shares.get(rev, 0) + t.percent
            if t.tag:
                pinned.append(dataclasses.replace(t, percent=0, uri=None))
        elif t.tag:
            pinned.append(dataclasses.replace(t, uri=None))
        elif t.revision and t.percent:
            shares[t.revision] = shares.get(t.revision, 0) + t.percent
    untagged = [TrafficTarget(TrafficKind.REVISION, pct, rev) for rev, pct in shares.items()]
    return (*untagged, *pinned, TrafficTarget(TrafficKind.REVISION, 0, revision, tag))


def deploy_run(
    ctx: ActionContext,
    image: str,
    no_traffic: bool,
    tag: str | None,
    create: NewService | None = None,
) -> ActionReport:
    """Deploy ``image``; verify /health; 3 failures → traffic back to the previous revision.

    With ``create`` a service that does not exist yet is created with those settings; one
    that exists gets the image like any deployment (its settings are left as they are).
    """
    try:
        service = ctx.run.get_service(ctx.service_name)
    except NotFound:
        if create is not None and no_traffic:
            raise Refused(
                f"{ctx.target.service} does not exist yet and its first revision takes all "
                "the traffic: deploy --create without --no-traffic/--tag"
            ) from None
        if create is not None:
            return create_run(ctx, create)
        raise Refused(
            f"the Cloud Run service {ctx.target.service} does not exist in {ctx.target.region} "
            f"of {ctx.target.project}: `mlsgw deploy --create --image {image}` creates it"
        ) from None
    if create is not None:
        ctx.reporter.step(f"{ctx.target.service} exists: deploying the image only")
    previous = service.main_revision()
    args: dict[str, object] = {"image": image, "no_traffic": no_traffic, "tag": tag}
    plan = [Change(ctx.service_name, "image", service.image or "(none)", image)]
    if no_traffic:
        assert tag is not None
        service_id = ctx.service_name.rsplit("/", 1)[-1]
        revision = f"{service_id}-{tag}-{ctx.run_id.rsplit('-', 1)[-1]}"
        split = no_traffic_split(service, revision, tag)
        plan.append(Change(ctx.service_name, "new revision", "-", f"{revision} (tag {tag}, 0%)"))
        args["revision"] = revision

        def compute(current: ServiceState) -> ServiceChange:
            split = no_traffic_split(current, revision, tag)
            return ServiceChange(image=image, revision_name=revision, traffic=split)

        def tag_url(after: ServiceState) -> str | None:
            return next((t.uri for t in after.traffic_statuses if t.tag == tag), None)

        spec = ActionSpec(
            command="deploy",
            args=args,
            service=service,
            plan=(*plan, traffic_change(ctx.service_name, service, split)),
            compute=compute,
            question=f"Deploy {image} to {ctx.target.service} as {revision}, with no traffic?",
            health_url=tag_url,
            known_good=lambda _: None,
            notices=(f"The new revision gets no traffic; test it on its tag URL ({tag}).",),
        )
        return perform(ctx, spec)
    after_traffic = latest_traffic(service)
    if after_traffic != spec_traffic(service):
        plan.append(traffic_change(ctx.service_name, service, after_traffic))

    def roll_back(ctx: ActionContext, after: ServiceState, out: Trail) -> None:
        serving = after.main_revision()
        if previous is None or serving == previous:
            out.result["state"] = f"the new revision failed; traffic stays on {serving}"
            return
        ctx.reporter.step(f"rolling traffic back to {previous}")
        try:
            rolled, _ = write_service(
                ctx, lambda current: ServiceChange(traffic=pin_traffic(current, previous))
            )
        except CloudError as exc:
            out.steps.append(Step("automatic rollback", Status.CRITICAL, str(exc)))
            out.result["state"] = f"the deploy failed and the automatic rollback failed too: {exc}"
            return
        out.steps.append(Step("automatic rollback", Status.OK, f"100% of traffic to {previous}"))
        health = verify_health(ctx, ctx.target.url or rolled.uri or None)
        out.steps.append(dataclasses.replace(health, name="verify /health after rollback"))
        out.result["rolled_back_to"] = previous
        out.result["state"] = (
            f"the new revision failed its health checks; traffic is back on {previous} (pinned: "
            "`mlsgw traffic --to-latest` after a fixed deploy)"
        )

    spec = ActionSpec(
        command="deploy",
        args=args,
        service=service,
        plan=tuple(plan),
        compute=lambda current: ServiceChange(image=image, traffic=latest_traffic(current)),
        question=f"Deploy {image} to {ctx.target.service}?",
        known_good=lambda after: after.latest_ready_revision,
    )
    return perform(ctx, spec, on_unhealthy=roll_back)


SCALE_FIELDS = ("min_instances", "max_instances", "concurrency", "cpu", "memory")


def scale_run(ctx: ActionContext, requested: dict[str, int | str]) -> ActionReport:
    """Apply the requested scaling settings (others are left as they are)."""
    service = ctx.run.get_service(ctx.service_name)
    current = dataclasses.asdict(service.scaling)
    low = int(requested.get("min_instances", current["min_instances"]))
    high = int(requested.get("max_instances", current["max_instances"]))
    if high and low > high:
        raise UsageError(f"minimum instances ({low}) above maximum instances ({high})")
    changing = {
        k: v for k, v in requested.items() if current[k] is None or str(v) != str(current[k])
    }
    plan = tuple(
        Change(ctx.service_name, key, str(current[key] or "(default)"), str(value))
        for key, value in changing.items()
    )

    def number(key: str) -> int | None:
        value = changing.get(key)
        return None if value is None else int(value)

    def text(key: str) -> str | None:
        value = changing.get(key)
        return None if value is None else str(value)

    spec = ActionSpec(
        command="scale",
        args=requested,
        service=service,
        plan=plan,
        compute=lambda _: ServiceChange(
            min_instances=number("min_instances"),
            max_instances=number("max_instances"),
            concurrency=number("concurrency"),
            cpu=text("cpu"),
            memory=text("memory"),
        ),
        question=f"Apply the new scaling settings to {ctx.target.service}?",
    )
    return perform(ctx, spec)


PANEL_CREATE = "New service (--create)"
INGRESS_CHOICES = ("all", "internal", "internal-and-cloud-load-balancing")


def new_service(image: str, given: Mapping[str, Any]) -> NewService:
    """The new service's settings: the defaults of :class:`NewService` with ``given`` over
    them; a :class:`UsageError` for an unknown ingress or min above max."""
    spec = dataclasses.replace(NewService(image=image), **given)
    if spec.ingress not in INGRESS_CHOICES:
        choices = ", ".join(INGRESS_CHOICES)
        raise UsageError(f"--ingress {spec.ingress!r}: expected one of {choices}")
    if spec.min_instances > spec.max_instances:
        raise UsageError(f"--min {spec.min_instances} is above --max {spec.max_instances}")
    return spec


@action_command
def deploy(
    image: Annotated[
        str, typer.Option(help="Container image, e.g. REGION-docker.pkg.dev/P/R/mlsgw:1.4.2")
    ],
    no_traffic: Annotated[
        bool, typer.Option("--no-traffic", help="Deploy without moving traffic (needs --tag).")
    ] = False,
    tag: Annotated[
        str | None, typer.Option(help="Tag for the new revision's own URL (with --no-traffic).")
    ] = None,
    create: Annotated[
        bool,
        typer.Option(
            "--create",
            help="Create the service when it does not exist yet, with the settings below.",
            rich_help_panel=PANEL_CREATE,
        ),
    ] = False,
    service_account: Annotated[
        str | None,
        typer.Option(
            help="Service account the relay runs as (default: the project's compute "
            "default, which has broad roles: give a dedicated one).",
            rich_help_panel=PANEL_CREATE,
        ),
    ] = None,
    ingress: Annotated[
        str | None,
        typer.Option(
            help="Who may reach the service: all (default), internal, "
            "internal-and-cloud-load-balancing.",
            rich_help_panel=PANEL_CREATE,
        ),
    ] = None,
    public: Annotated[
        bool | None,
        typer.Option(
            "--public/--private",
            help="Let Nostr clients connect without a Google identity (the relay does its "
            "own NIP-42 authentication); --private keeps the IAM invoker check. Default: public.",
            rich_help_panel=PANEL_CREATE,
        ),
    ] = None,
    min_instances: Annotated[
        int | None,
        typer.Option(
            "--min", min=0, help="Minimum instances (default 1).", rich_help_panel=PANEL_CREATE
        ),
    ] = None,
    max_instances: Annotated[
        int | None,
        typer.Option(
            "--max", min=1, help="Maximum instances (default 10).", rich_help_panel=PANEL_CREATE
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="Concurrent requests per instance; each open WebSocket is one (default 250).",
            rich_help_panel=PANEL_CREATE,
        ),
    ] = None,
    cpu: Annotated[
        str | None, typer.Option(help="CPU limit (default 1).", rich_help_panel=PANEL_CREATE)
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="Memory limit (default 512Mi).", rich_help_panel=PANEL_CREATE)
    ] = None,
    *,
    options: ActionOptions,
) -> None:
    """Deploy an image (--create: the first deployment); after 3 failed /health checks in a
    row traffic goes back to the previous revision automatically.

    --create creates a service that does not exist yet, set up for WebSocket clients:
    request timeout 3600 s, session affinity, CPU always allocated, a startup probe on
    /health, min/max instances, concurrency, service account and ingress. Later settings
    changes: mlsgw scale.

    Exit codes: 0 deployed (or dry run), 1 failed (rolled back when it could be), 3 refused
    (service not found without --create, not confirmed, no credentials, usage error).

    Example: mlsgw deploy --image europe-west1-docker.pkg.dev/p/r/mlsgw:1.4.2 --yes
    """
    if no_traffic != (tag is not None):
        error = UsageError("--no-traffic and --tag NAME go together")
        fail_early("deploy", error, as_json=options.as_json)
    settings: dict[str, Any] = {
        "service_account": service_account,
        "ingress": ingress,
        "public": public,
        "min_instances": min_instances,
        "max_instances": max_instances,
        "concurrency": concurrency,
        "cpu": cpu,
        "memory": memory,
    }
    given = {k: v for k, v in settings.items() if v is not None}
    spec = None
    try:
        if create:
            spec = new_service(image, given)
        elif given:
            raise UsageError(
                "service settings are for --create only; "
                "an existing service's are changed with `mlsgw scale`"
            )
    except UsageError as error:
        fail_early("deploy", error, as_json=options.as_json)
    run_action("deploy", options, lambda ctx: deploy_run(ctx, image, no_traffic, tag, spec))


@action_command
def scale(
    min_instances: Annotated[
        int | None, typer.Option("--min", min=0, help="Minimum instances.")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option("--max", min=1, help="Maximum instances.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Concurrent requests per instance.")
    ] = None,
    cpu: Annotated[str | None, typer.Option(help="CPU limit, e.g. 1 or 2.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory limit, e.g. 512Mi or 1Gi.")] = None,
    *,
    options: ActionOptions,
) -> None:
    """Apply the runbook's scaling settings (a new revision), then verify /health.

    Only the values that differ from the service's are changed; when none does, nothing is
    written.

    Exit codes: 0 done (also: nothing to change), 1 failed (the new revision is not Ready or
    /health fails), 3 refused (not confirmed, no terminal and no --yes, no credentials,
    usage error).

    Example: mlsgw scale --min 2 --max 50 --concurrency 80 --cpu 1 --memory 512Mi
    """
    given = (min_instances, max_instances, concurrency, cpu, memory)
    requested = {k: v for k, v in zip(SCALE_FIELDS, given, strict=True) if v is not None}
    if not requested:
        error = UsageError("give at least one of --min, --max, --concurrency, --cpu, --memory")
        fail_early("scale", error, as_json=options.as_json)
    run_action("scale", options, lambda ctx: scale_run(ctx, requested))
