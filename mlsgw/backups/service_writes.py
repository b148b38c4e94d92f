"""Service writes of the restore procedures, through the engine's etag-guarded ``write``
(a concurrent change is re-read and the change recomputed, never overwritten)."""

from __future__ import annotations

from collections.abc import Callable

from mlsgw.gcp.base import ServiceChange, ServiceState
from mlsgw.report import Change
from mlsgw.resources.base import Mutation
from mlsgw.resources.cloud_run_service import CloudRunService, only_changes
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import write


def update_service(
    ctx: RunContext, name: str, label: str, compute: Callable[[ServiceState], ServiceChange]
) -> ServiceState:
    """Apply ``compute(service)`` to the service as read now (nothing when it would change
    nothing); the service afterwards."""

    def no_plan(_: ServiceState, __: ServiceChange) -> tuple[Change, ...]:
        return ()

    resource = CloudRunService(ctx.cloud.run(), name)
    mutation = Mutation(label, resource, only_changes(compute), no_plan)
    state = resource.read()
    change = mutation.compute(state)
    if change is None:
        return state
    after, _ = write(ctx, mutation, state, change)
    return after


def set_ingress(ctx: RunContext, name: str, ingress: str) -> ServiceState:
    """The service's ingress set to ``ingress`` (unchanged when it already is)."""
    return update_service(ctx, name, f"ingress {ingress}", lambda _: ServiceChange(ingress=ingress))
