"""``mlsgw deploy --create``: the first deployment of the relay, on the runbook engine.

The service is created with the settings a WebSocket relay needs (:class:`NewService`), so
the first deployment is planned, validated by Cloud Run (``--dry-run``), confirmed, verified
on ``/health`` and recorded in the ledger like every later one.
"""

from __future__ import annotations

from mlsgw.actions import verify_health
from mlsgw.gcp.base import NewService, ServiceState
from mlsgw.ledger import KNOWN_GOOD_KEY
from mlsgw.report import ActionReport, Change, Outcome, Status, Step
from mlsgw.resources.base import Mutation
from mlsgw.resources.new_cloud_run_service import NewCloudRunService
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, Trail, execute


def creation_plan(name: str, spec: NewService) -> tuple[Change, ...]:
    """One plan line per setting of the new service."""
    return tuple(Change(name, setting, "-", value) for setting, value in spec.settings())


def create_run(ctx: RunContext, spec: NewService) -> ActionReport:
    """Create the service with ``spec``, then verify ``/health`` and record the revision.

    Run again once the service exists, nothing is created and it says so.
    """
    name = ctx.service_name
    resource = NewCloudRunService(ctx.run, name)

    def compute(state: ServiceState | None) -> NewService | None:
        return spec if state is None else None

    def applied(after: ServiceState | None) -> str:
        if after is None:
            return "created"
        return f"created; {after.latest_ready_revision} Ready at {after.uri}"

    def verify(ctx: RunContext, trail: Trail) -> tuple[Outcome, str]:
        after: ServiceState = trail.after["service"]
        unreachable = None
        if not spec.public:
            unreachable = "the service requires IAM authentication"
        elif spec.ingress != "all":
            unreachable = f"ingress {spec.ingress}: its URL is not public; give --url to verify"
        if unreachable and not ctx.target.url:
            trail.steps.append(Step("verify /health", Status.SKIPPED, unreachable))
        else:
            health = verify_health(ctx, ctx.target.url or after.uri or None)
            trail.steps.append(health)
            if health.status is Status.CRITICAL:
                return Outcome.FAILED, f"{ctx.target.service} was created but /health fails"
        if after.latest_ready_revision:
            trail.result[KNOWN_GOOD_KEY] = after.latest_ready_revision
        trail.notices.append("Next images: `mlsgw deploy --image IMAGE`; settings: `mlsgw scale`.")
        return Outcome.DONE, f"created {ctx.target.service}: {after.uri}"

    action = Action(
        command="deploy",
        args={"create": True, **{k: v for k, v in vars(spec).items()}},
        mutations=(
            Mutation(
                "create",
                resource,
                compute,
                lambda state, change: creation_plan(name, change),
                applied,
            ),
        ),
        question=f"Create the Cloud Run service {ctx.target.service} with {spec.image}?",
        unchanged=f"{ctx.target.service} already exists: nothing created",
        verify=verify,
    )
    return execute(ctx, action)
