"""The interface the runbook uses for Google Cloud: domain values and one Protocol per API.

Adapters (``run.py``, ``logs.py``, ``firestore_admin.py``, ``monitoring.py``) implement these
with the official client libraries and raise only :mod:`mlsgw.errors` exceptions. Runbook
logic imports this module, never ``google.*``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol


class TrafficKind(StrEnum):
    """Where a traffic target points: the latest ready revision, or a named revision."""

    LATEST = "latest"
    REVISION = "revision"


@dataclass(frozen=True)
class TrafficTarget:
    """One entry of a service's traffic split (spec or status)."""

    kind: TrafficKind
    percent: int
    revision: str | None = None
    """Short revision name (``api-00002-xyz``) for ``REVISION`` targets."""
    tag: str | None = None
    uri: str | None = None
    """Tag URL; only present in traffic *status*."""

    def describe(self) -> str:
        """``api-00002-xyz 100%``, ``LATEST 0% tag=canary``."""
        who = self.revision if self.kind is TrafficKind.REVISION else "LATEST"
        tag = f" tag={self.tag}" if self.tag else ""
        return f"{who} {self.percent}%{tag}"


@dataclass(frozen=True)
class Condition:
    """A Cloud Run condition, reduced to what an operator reads."""

    type: str
    state: str
    """``succeeded``, ``failed``, ``reconciling``, ``pending`` or ``unspecified``."""
    message: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        """The condition is satisfied."""
        return self.state == "succeeded"


@dataclass(frozen=True)
class Scaling:
    """The runbook's scaling settings of the service template (R-K3)."""

    min_instances: int = 0
    max_instances: int = 0
    concurrency: int = 0
    cpu: str | None = None
    memory: str | None = None


@dataclass(frozen=True)
class EnvVar:
    """One environment variable of the service's first container."""

    name: str
    value: str | None
    """The plain-text value; ``None`` when it comes from Secret Manager."""
    secret: str | None = None
    """``secret:version`` when the value is a Secret Manager reference."""


class ProbeKind(StrEnum):
    """How a startup probe checks the container."""

    HTTP = "http"
    TCP = "tcp"
    GRPC = "grpc"


@dataclass(frozen=True)
class StartupProbe:
    """The startup probe of the service's first container: an HTTP GET of ``path``, a TCP
    connect or a gRPC health check, on ``port``, with its timing."""

    kind: ProbeKind
    port: int
    """The port probed (the container's port when the probe names none)."""
    path: str | None = None
    """The path of an HTTP probe; ``None`` for the other kinds."""
    period_seconds: int = 0
    timeout_seconds: int = 0
    failure_threshold: int = 0
    initial_delay_seconds: int = 0

    def describe(self) -> str:
        """``GET /health on port 8080``, ``TCP port 8080``, ``gRPC on port 8080``."""
        if self.kind is ProbeKind.HTTP:
            return f"GET {self.path} on port {self.port}"
        if self.kind is ProbeKind.TCP:
            return f"TCP port {self.port}"
        return f"gRPC on port {self.port}"


@dataclass(frozen=True)
class ServiceState:
    """A Cloud Run service as read, with the etag that guards the next write."""

    name: str
    uri: str
    etag: str
    generation: int
    ready: Condition
    latest_ready_revision: str | None
    latest_created_revision: str | None
    traffic: tuple[TrafficTarget, ...]
    traffic_statuses: tuple[TrafficTarget, ...]
    image: str | None
    scaling: Scaling
    labels: Mapping[str, str] = field(default_factory=dict)
    ingress: str = "all"
    """``all``, ``internal``, ``internal-and-cloud-load-balancing`` or ``none`` (gcloud's names)."""
    invoker_iam_disabled: bool = False
    """True: anyone may invoke the service, whatever its IAM policy says."""
    env: tuple[EnvVar, ...] = ()
    startup_probe: StartupProbe | None = None
    """The first container's startup probe in the template; ``None`` when it sets none."""

    def plain_env(self) -> dict[str, str]:
        """Name -> value of the plain-text environment variables (secret references left out)."""
        return {v.name: v.value for v in self.env if v.value is not None}

    def serving(self) -> dict[str, int]:
        """Revision -> percent actually receiving traffic (``LATEST`` resolved)."""
        split: dict[str, int] = {}
        for target in self.traffic_statuses or self.traffic:
            revision = target.revision
            if target.kind is TrafficKind.LATEST:
                revision = self.latest_ready_revision
            if revision and target.percent:
                split[revision] = split.get(revision, 0) + target.percent
        return split

    def main_revision(self) -> str | None:
        """The revision with the largest share of traffic."""
        split = self.serving()
        return max(split, key=lambda rev: split[rev]) if split else None

    @property
    def pinned(self) -> bool:
        """Traffic is pinned to named revisions instead of following LATEST."""
        return not any(
            t.kind is TrafficKind.LATEST and t.percent
            for t in self.traffic_statuses or self.traffic
        )


@dataclass(frozen=True)
class Revision:
    """One revision of a service."""

    name: str
    created: datetime | None
    ready: Condition
    image: str | None = None


@dataclass(frozen=True)
class ServiceChange:
    """What to change on a service; ``None`` fields are left as they are."""

    traffic: tuple[TrafficTarget, ...] | None = None
    image: str | None = None
    env: Mapping[str, str] | None = None
    """Environment variables set (added or replaced) on the first container."""
    min_instances: int | None = None
    max_instances: int | None = None
    concurrency: int | None = None
    cpu: str | None = None
    memory: str | None = None
    revision_name: str | None = None
    """Explicit name for the new revision (must start with ``<service>-``)."""
    ingress: str | None = None
    """Service-level: who may reach the service (see :attr:`ServiceState.ingress`)."""
    invoker_iam_disabled: bool | None = None
    """Service-level: skip the IAM invoker check (public without ``allUsers``)."""
    startup_probe: StartupProbe | None = None
    """The first container's startup probe, replaced as a whole."""

    def changes(self, service: ServiceState) -> bool:
        """Whether applying this to ``service`` would change anything."""
        if self.creates_revision:
            return True
        if self.ingress is not None and self.ingress != service.ingress:
            return True
        if (
            self.invoker_iam_disabled is not None
            and self.invoker_iam_disabled != service.invoker_iam_disabled
        ):
            return True
        written = tuple(dataclasses.replace(t, uri=None) for t in service.traffic)
        return self.traffic is not None and self.traffic != written

    @property
    def creates_revision(self) -> bool:
        """The template changes, so Cloud Run creates a new revision."""
        return any(
            v is not None
            for v in (
                self.image,
                self.env,
                self.min_instances,
                self.max_instances,
                self.concurrency,
                self.cpu,
                self.memory,
                self.revision_name,
                self.startup_probe,
            )
        )


HEALTH_PATH = "/health"
"""The relay's health endpoint, which a first deployment's startup probe checks."""


def health_probe(port: int, path: str = HEALTH_PATH) -> StartupProbe:
    """The startup probe a first deployment gives the relay: ``GET path`` every 2 s, each
    answer within 1 s, for up to 30 tries."""
    return StartupProbe(
        ProbeKind.HTTP, port, path, period_seconds=2, timeout_seconds=1, failure_threshold=30
    )


@dataclass(frozen=True)
class NewService:
    """A Cloud Run service as a WebSocket relay needs it, for its first deployment.

    WebSocket connections are requests that last: the request timeout is Cloud Run's
    maximum, a client reconnecting lands on the same instance (session affinity), CPU stays
    allocated between messages, and at least one instance stays warm so connections are not
    refused during a cold start.
    """

    image: str
    service_account: str | None = None
    """``None``: the project's default compute service account (not recommended)."""
    ingress: str = "all"
    public: bool = True
    """Skip the IAM invoker check (``invoker_iam_disabled``): Nostr clients cannot sign
    Google ID tokens, so a public relay needs it."""
    min_instances: int = 1
    max_instances: int = 10
    concurrency: int = 250
    """Concurrent requests per instance; every open WebSocket counts as one."""
    cpu: str = "1"
    memory: str = "512Mi"
    timeout_seconds: int = 3600
    session_affinity: bool = True
    cpu_always_allocated: bool = True
    port: int = 8080
    startup_probe_path: str = HEALTH_PATH

    @property
    def startup_probe(self) -> StartupProbe:
        """The startup probe of the first revision: ``GET`` :attr:`startup_probe_path`."""
        return health_probe(self.port, self.startup_probe_path)

    def settings(self) -> tuple[tuple[str, str], ...]:
        """Every setting as (name, value) for people: the plan, the ledger."""
        return (
            ("image", self.image),
            ("service account", self.service_account or "(the project's default compute)"),
            ("ingress", self.ingress),
            ("unauthenticated access", "allowed" if self.public else "IAM invoker only"),
            ("request timeout", f"{self.timeout_seconds} s"),
            ("session affinity", "on" if self.session_affinity else "off"),
            ("concurrency", str(self.concurrency)),
            ("instances", f"min {self.min_instances}, max {self.max_instances}"),
            ("CPU", f"{self.cpu}, always allocated" if self.cpu_always_allocated else self.cpu),
            ("memory", self.memory),
            ("startup probe", self.startup_probe.describe()),
        )


@dataclass(frozen=True)
class Binding:
    """One IAM role binding."""

    role: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class IamPolicy:
    """A resource's IAM policy with its etag (read-modify-write)."""

    bindings: tuple[Binding, ...]
    etag: bytes
    version: int = 1

    def members_of(self, role: str) -> tuple[str, ...]:
        """Every member bound to ``role``."""
        return tuple(m for b in self.bindings if b.role == role for m in b.members)

    def without(self, role: str, members: frozenset[str]) -> IamPolicy:
        """This policy with ``members`` removed from ``role`` (empty bindings dropped)."""
        bindings = []
        for b in self.bindings:
            kept = tuple(m for m in b.members if b.role != role or m not in members)
            if kept:
                bindings.append(Binding(b.role, kept))
        return dataclasses.replace(self, bindings=tuple(bindings))

    def describe(self) -> dict[str, object]:
        """The policy as JSON-able data (etag as base64), e.g. for the ledger."""
        return {
            "version": self.version,
            "etag": base64.b64encode(self.etag).decode(),
            "bindings": [{"role": b.role, "members": list(b.members)} for b in self.bindings],
        }

    @classmethod
    def from_description(cls, data: Mapping[str, object]) -> IamPolicy:
        """The inverse of :meth:`describe`."""
        raw = data.get("bindings")
        bindings = []
        for item in raw if isinstance(raw, list) else []:
            bindings.append(Binding(str(item["role"]), tuple(str(m) for m in item["members"])))
        version = data.get("version", 1)
        return cls(
            bindings=tuple(bindings),
            etag=base64.b64decode(str(data.get("etag", ""))),
            version=int(version) if isinstance(version, int | str) else 1,
        )


@dataclass(frozen=True)
class HttpRequestInfo:
    """The ``httpRequest`` of a request log entry (Cloud Run writes one per request)."""

    status: int
    method: str = ""
    url: str = ""
    remote_ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class LogEntry:
    """One log entry: when, how severe, its message, its structured fields."""

    time: datetime | None
    severity: str
    message: str
    fields: Mapping[str, object] = field(default_factory=dict)
    """The ``jsonPayload`` of a structured entry (the relay's own JSON lines)."""
    http: HttpRequestInfo | None = None


@dataclass(frozen=True)
class FirestoreOperation:
    """A Firestore Admin long-running operation (export, import, index build, ...)."""

    name: str
    kind: str
    state: str
    started: datetime | None
    ended: datetime | None
    error: str | None

    @property
    def failed(self) -> bool:
        """Finished with an error."""
        return self.error is not None or self.state == "FAILED"


@dataclass(frozen=True)
class ServiceMetrics:
    """Cloud Monitoring figures for one service over a window; ``None`` means no data."""

    requests: int
    errors_5xx: int
    latency_p95_ms: float | None
    memory_utilization: float | None
    """Fraction 0..1 (p99 across instances)."""

    @property
    def error_ratio(self) -> float | None:
        """5xx responses / all responses, or ``None`` with no traffic."""
        return self.errors_5xx / self.requests if self.requests else None


@dataclass(frozen=True)
class LogBucket:
    """A Cloud Logging bucket and how long it keeps entries."""

    name: str
    retention_days: int
    locked: bool = False


@dataclass(frozen=True)
class CapacityFigures:
    """Cloud Monitoring peaks for one service over a window; ``None`` means no data."""

    peak_instances: int | None
    """The highest instance count (summed over revisions and states)."""
    cpu_utilization: float | None
    """Fraction 0..1 (p99 across instances)."""
    concurrency: float | None
    """Concurrent requests per instance (p99 of the per-instance maximum)."""


class CloudRunApi(Protocol):
    """Cloud Run Admin v2: services, revisions, their operations and IAM."""

    def get_service(self, name: str) -> ServiceState: ...

    def list_revisions(self, service: str) -> list[Revision]: ...

    def update_service(
        self, name: str, change: ServiceChange, *, etag: str, validate_only: bool = False
    ) -> ServiceState:
        """Apply ``change`` guarded by ``etag`` and wait for the operation.

        Raises :class:`mlsgw.errors.Conflict` when the service changed since ``etag``.
        """
        ...

    def create_service(
        self, name: str, spec: NewService, *, validate_only: bool = False
    ) -> ServiceState:
        """Create the service ``name`` and wait for the operation (first revision Ready).

        Raises :class:`mlsgw.errors.Conflict` when it already exists.
        """
        ...

    def get_iam_policy(self, name: str) -> IamPolicy: ...

    def describe_service(self, name: str) -> dict[str, object]:
        """The whole service resource as the API returns it (JSON field names)."""
        ...

    def set_iam_policy(self, name: str, policy: IamPolicy) -> IamPolicy:
        """Write ``policy``; :class:`mlsgw.errors.Conflict` when its etag is stale."""
        ...


class LogsApi(Protocol):
    """Cloud Logging v2 entries."""

    def list_entries(self, project: str, filter_: str, limit: int) -> list[LogEntry]:
        """Newest first, at most ``limit``."""
        ...

    def list_buckets(self, project: str) -> list[LogBucket]:
        """Every log bucket of the project, in every location."""
        ...

    def export_entries(self, project: str, filter_: str, limit: int) -> list[Mapping[str, object]]:
        """Whole entries as the API returns them (JSON-able), oldest first, at most ``limit``
        (evidence keeps every field, not just the message)."""
        ...


class FirestoreAdminApi(Protocol):
    """Firestore Admin v1 operations."""

    def list_operations(
        self, project: str, database: str = "(default)"
    ) -> list[FirestoreOperation]:
        """Every operation the API still lists for the database."""
        ...


class ProjectsApi(Protocol):
    """Resource Manager v3 projects."""

    def get_iam_policy(self, project: str) -> IamPolicy:
        """The project's IAM policy (every role binding)."""
        ...


class MonitoringApi(Protocol):
    """Cloud Monitoring v3 time series for a Cloud Run service."""

    def service_metrics(self, project: str, service: str, window: timedelta) -> ServiceMetrics: ...

    def capacity(self, project: str, service: str, window: timedelta) -> CapacityFigures:
        """Peak instances, CPU utilisation and per-instance concurrency over ``window``."""
        ...
