"""A Cloud Run service as a runbook resource: traffic, template, ingress, invoker flag."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mlsgw.gcp.base import CloudRunApi, ServiceChange, ServiceState


def service_summary(service: ServiceState) -> dict[str, object]:
    """The pre/post state written to the ledger."""
    return {
        "etag": service.etag,
        "generation": service.generation,
        "traffic": [t.describe() for t in service.traffic],
        "serving": service.serving(),
        "latest_ready_revision": service.latest_ready_revision,
        "image": service.image,
        "scaling": dataclasses.asdict(service.scaling),
        "ingress": service.ingress,
        "invoker_iam_disabled": service.invoker_iam_disabled,
        "startup_probe": dataclasses.asdict(service.startup_probe)
        if service.startup_probe
        else None,
    }


class CloudRunService:
    """:class:`~mlsgw.resources.base.Resource` over one service of the Cloud Run Admin API."""

    key = "service"
    kind = "Cloud Run service"

    def __init__(self, api: CloudRunApi, name: str) -> None:
        self.api = api
        self.name = name

    def read(self) -> ServiceState:
        """The service with its etag."""
        return self.api.get_service(self.name)

    def summary(self, state: ServiceState) -> object:
        """See :func:`service_summary`."""
        return service_summary(state)

    def validate(self, state: ServiceState, change: ServiceChange) -> str:
        """Cloud Run checks the whole update server-side (``validate_only``)."""
        self.api.update_service(self.name, change, etag=state.etag, validate_only=True)
        return "accepted by Cloud Run (validate_only)"

    def apply(self, state: ServiceState, change: ServiceChange) -> ServiceState:
        """Update guarded by the etag read; waits for the operation (new revision Ready)."""
        return self.api.update_service(self.name, change, etag=state.etag)


def only_changes(
    compute: Callable[[ServiceState], ServiceChange],
) -> Callable[[ServiceState], ServiceChange | None]:
    """``compute``, answering ``None`` when its change would leave the service as it is."""

    def wrapped(service: ServiceState) -> ServiceChange | None:
        change = compute(service)
        return change if change.changes(service) else None

    return wrapped
