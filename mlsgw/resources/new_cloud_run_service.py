"""A Cloud Run service that may not exist yet, as a runbook resource: its first deployment."""

from __future__ import annotations

from mlsgw.errors import NotFound
from mlsgw.gcp.base import CloudRunApi, NewService, ServiceState
from mlsgw.resources.cloud_run_service import service_summary


class NewCloudRunService:
    """:class:`~mlsgw.resources.base.Resource` whose state is ``None`` while the service does
    not exist, and whose only change is creating it."""

    key = "service"
    kind = "Cloud Run service"

    def __init__(self, api: CloudRunApi, name: str) -> None:
        self.api = api
        self.name = name

    def read(self) -> ServiceState | None:
        """The service, or ``None`` when it does not exist."""
        try:
            return self.api.get_service(self.name)
        except NotFound:
            return None

    def summary(self, state: ServiceState | None) -> object:
        """``{"exists": false}`` before the creation, the service's summary after it."""
        return {"exists": False} if state is None else service_summary(state)

    def validate(self, state: ServiceState | None, change: NewService) -> str:
        """Cloud Run checks the whole creation server-side (``validate_only``)."""
        self.api.create_service(self.name, change, validate_only=True)
        return "accepted by Cloud Run (validate_only)"

    def apply(self, state: ServiceState | None, change: NewService) -> ServiceState:
        """Create the service; waits until its first revision is Ready. A service created
        meanwhile by someone else is a :class:`~mlsgw.errors.Conflict` (the engine then
        reads it and finds nothing left to do)."""
        return self.api.create_service(self.name, change)
