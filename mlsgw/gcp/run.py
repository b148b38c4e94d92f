"""Cloud Run Admin v2 adapter (``google-cloud-run``): services, revisions, operations, IAM."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from google.api_core import exceptions as api
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import duration_pb2, json_format

from mlsgw import errors
from mlsgw.gcp.base import (
    Binding,
    Condition,
    EnvVar,
    IamPolicy,
    NewService,
    ProbeKind,
    Revision,
    Scaling,
    ServiceChange,
    ServiceState,
    StartupProbe,
    TrafficKind,
    TrafficTarget,
)
from mlsgw.gcp.errors import vendor_errors

_ALLOCATION = run_v2.TrafficTargetAllocationType
_KIND = {
    _ALLOCATION.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST: TrafficKind.LATEST,
    _ALLOCATION.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION: TrafficKind.REVISION,
}
_STATE = {
    run_v2.Condition.State.CONDITION_SUCCEEDED: "succeeded",
    run_v2.Condition.State.CONDITION_FAILED: "failed",
    run_v2.Condition.State.CONDITION_RECONCILING: "reconciling",
    run_v2.Condition.State.CONDITION_PENDING: "pending",
}
_INGRESS = {
    run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL: "all",
    run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY: "internal",
    run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER: (
        "internal-and-cloud-load-balancing"
    ),
    run_v2.IngressTraffic.INGRESS_TRAFFIC_NONE: "none",
}
_INGRESS_VALUE = {name: value for value, name in _INGRESS.items()}
INGRESS_NAMES = tuple(_INGRESS.values())
OPERATION_TIMEOUT = 900.0
"""Seconds to wait for a service update (a new revision can take minutes to start)."""


def short_name(resource: str) -> str:
    """The last path segment of a resource name (``.../revisions/api-0002`` -> ``api-0002``)."""
    return resource.rsplit("/", 1)[-1]


def _condition(raw: Any) -> Condition:
    return Condition(
        type=raw.type_ or "Ready",
        state=_STATE.get(raw.state, "unspecified"),
        message=raw.message,
        reason=raw.reason.name if raw.reason else "",
    )


def _ready_of(conditions: Any) -> Condition:
    for raw in conditions:
        if raw.type_ == "Ready":
            return _condition(raw)
    return Condition("Ready", "unspecified", "no Ready condition reported")


def _traffic(raw: Any) -> TrafficTarget:
    return TrafficTarget(
        kind=_KIND.get(raw.type_, TrafficKind.REVISION),
        percent=int(raw.percent),
        revision=raw.revision or None,
        tag=raw.tag or None,
        uri=getattr(raw, "uri", "") or None,
    )


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.timestamp() > 0 else None


def _env(raw: Any) -> EnvVar:
    ref = raw.value_source.secret_key_ref if raw.value_source else None
    if ref and ref.secret:
        return EnvVar(raw.name, None, f"{ref.secret}:{ref.version or 'latest'}")
    return EnvVar(raw.name, raw.value)


DEFAULT_PORT = 8080
"""The port Cloud Run sends requests to when the container declares none."""


def _startup_probe(container: run_v2.Container) -> StartupProbe | None:
    if "startup_probe" not in container:
        return None
    raw = container.startup_probe
    kind = run_v2.Probe.pb(raw).WhichOneof("probe_type")
    if kind is None:
        return None
    action = getattr(raw, kind)
    ports = list(container.ports)
    port = int(action.port) or (int(ports[0].container_port) if ports else 0) or DEFAULT_PORT
    return StartupProbe(
        kind={"http_get": ProbeKind.HTTP, "tcp_socket": ProbeKind.TCP}.get(kind, ProbeKind.GRPC),
        port=port,
        path=(raw.http_get.path or "/") if kind == "http_get" else None,
        period_seconds=int(raw.period_seconds),
        timeout_seconds=int(raw.timeout_seconds),
        failure_threshold=int(raw.failure_threshold),
        initial_delay_seconds=int(raw.initial_delay_seconds),
    )


def probe_message(probe: StartupProbe) -> run_v2.Probe:
    """The ``run_v2.Probe`` for ``probe`` (HTTP or TCP; a gRPC probe keeps only its port)."""
    raw = run_v2.Probe(
        period_seconds=probe.period_seconds,
        timeout_seconds=probe.timeout_seconds,
        failure_threshold=probe.failure_threshold,
        initial_delay_seconds=probe.initial_delay_seconds,
    )
    if probe.kind is ProbeKind.HTTP:
        raw.http_get = run_v2.HTTPGetAction(path=probe.path or "/", port=probe.port)
    elif probe.kind is ProbeKind.TCP:
        raw.tcp_socket = run_v2.TCPSocketAction(port=probe.port)
    else:
        raw.grpc = run_v2.GRPCAction(port=probe.port)
    return raw


def service_state(raw: run_v2.Service) -> ServiceState:
    """Our view of a ``run_v2.Service``."""
    containers = list(raw.template.containers)
    limits: Mapping[str, str] = containers[0].resources.limits if containers else {}
    return ServiceState(
        name=raw.name,
        uri=raw.uri,
        etag=raw.etag,
        generation=int(raw.generation),
        ready=_condition(raw.terminal_condition),
        latest_ready_revision=short_name(raw.latest_ready_revision) or None,
        latest_created_revision=short_name(raw.latest_created_revision) or None,
        traffic=tuple(_traffic(t) for t in raw.traffic),
        traffic_statuses=tuple(_traffic(t) for t in raw.traffic_statuses),
        image=containers[0].image if containers else None,
        scaling=Scaling(
            min_instances=int(raw.template.scaling.min_instance_count),
            max_instances=int(raw.template.scaling.max_instance_count),
            concurrency=int(raw.template.max_instance_request_concurrency),
            cpu=limits.get("cpu"),
            memory=limits.get("memory"),
        ),
        labels=dict(raw.labels),
        # Unspecified means the API default, which is all traffic.
        ingress=_INGRESS.get(raw.ingress, "all"),
        invoker_iam_disabled=bool(raw.invoker_iam_disabled),
        env=tuple(_env(e) for e in containers[0].env) if containers else (),
        startup_probe=_startup_probe(containers[0]) if containers else None,
    )


def apply_change(raw: run_v2.Service, change: ServiceChange) -> None:
    """Write ``change`` into ``raw`` (in place)."""
    if change.traffic is not None:
        raw.traffic = [
            run_v2.TrafficTarget(
                type_=_ALLOCATION.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
                if t.kind is TrafficKind.LATEST
                else _ALLOCATION.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
                revision=t.revision or "",
                percent=t.percent,
                tag=t.tag or "",
            )
            for t in change.traffic
        ]
    if change.ingress is not None:
        raw.ingress = run_v2.IngressTraffic(_INGRESS_VALUE[change.ingress])
    if change.invoker_iam_disabled is not None:
        raw.invoker_iam_disabled = change.invoker_iam_disabled
    if not change.creates_revision:
        return
    template = raw.template
    template.revision = change.revision_name or ""  # a revision name cannot be reused
    if not template.containers:
        template.containers.append(run_v2.Container())
    container = template.containers[0]
    if change.image is not None:
        container.image = change.image
    for key, value in (change.env or {}).items():
        for var in container.env:
            if var.name == key:
                var.value = value
                break
        else:
            container.env.append(run_v2.EnvVar(name=key, value=value))
    if change.min_instances is not None:
        template.scaling.min_instance_count = change.min_instances
    if change.max_instances is not None:
        template.scaling.max_instance_count = change.max_instances
    if change.concurrency is not None:
        template.max_instance_request_concurrency = change.concurrency
    if change.cpu is not None:
        container.resources.limits["cpu"] = change.cpu
    if change.memory is not None:
        container.resources.limits["memory"] = change.memory
    if change.startup_probe is not None:
        container.startup_probe = probe_message(change.startup_probe)


def new_service(spec: NewService) -> run_v2.Service:
    """The ``run_v2.Service`` for a first deployment (see :class:`NewService`)."""
    container = run_v2.Container(
        image=spec.image,
        ports=[run_v2.ContainerPort(name="http1", container_port=spec.port)],
        resources=run_v2.ResourceRequirements(
            limits={"cpu": spec.cpu, "memory": spec.memory},
            cpu_idle=not spec.cpu_always_allocated,
        ),
        startup_probe=probe_message(spec.startup_probe),
    )
    template = run_v2.RevisionTemplate(
        containers=[container],
        scaling=run_v2.RevisionScaling(
            min_instance_count=spec.min_instances, max_instance_count=spec.max_instances
        ),
        max_instance_request_concurrency=spec.concurrency,
        timeout=duration_pb2.Duration(seconds=spec.timeout_seconds),
        session_affinity=spec.session_affinity,
        service_account=spec.service_account or "",
    )
    return run_v2.Service(
        template=template,
        ingress=run_v2.IngressTraffic(_INGRESS_VALUE[spec.ingress]),
        invoker_iam_disabled=spec.public,
        traffic=[
            run_v2.TrafficTarget(
                type_=_ALLOCATION.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=100
            )
        ],
    )


class CloudRunAdapter:
    """:class:`mlsgw.gcp.base.CloudRunApi` over ``run_v2.ServicesClient`` / ``RevisionsClient``."""

    def __init__(
        self,
        services: run_v2.ServicesClient,
        revisions: run_v2.RevisionsClient,
        *,
        timeout: float,
        operation_timeout: float = OPERATION_TIMEOUT,
    ) -> None:
        self._services = services
        self._endpoint = services.api_endpoint
        self._revisions = revisions
        self._timeout = timeout
        self._operation_timeout = operation_timeout

    def _errors(self, what: str, permission: str | None = None) -> AbstractContextManager[None]:
        """:func:`vendor_errors` naming this client's endpoint."""
        return vendor_errors(what, permission, self._endpoint)

    def _get_raw(self, name: str) -> run_v2.Service:
        with self._errors(f"read Cloud Run service {name}", "run.services.get"):
            return self._services.get_service(name=name, timeout=self._timeout)

    def get_service(self, name: str) -> ServiceState:
        """Read the service."""
        return service_state(self._get_raw(name))

    def list_revisions(self, service: str) -> list[Revision]:
        """Every revision of the service, newest first."""
        with self._errors(f"list revisions of {service}", "run.revisions.list"):
            raws = list(self._revisions.list_revisions(parent=service, timeout=self._timeout))
        revisions = [
            Revision(
                name=short_name(r.name),
                created=_time(r.create_time),
                ready=_ready_of(r.conditions),
                image=r.containers[0].image if r.containers else None,
            )
            for r in raws
        ]
        return sorted(revisions, key=lambda r: (r.created is not None, r.created), reverse=True)

    def update_service(
        self, name: str, change: ServiceChange, *, etag: str, validate_only: bool = False
    ) -> ServiceState:
        """Apply ``change`` on the service as of ``etag`` and wait for the operation."""
        raw = self._get_raw(name)
        apply_change(raw, change)
        raw.etag = etag
        request = run_v2.UpdateServiceRequest(service=raw, validate_only=validate_only)
        with self._errors(f"update Cloud Run service {name}", "run.services.update"):
            operation = self._services.update_service(request=request, timeout=self._timeout)
        return service_state(self._wait(name, operation, "update"))

    def create_service(
        self, name: str, spec: NewService, *, validate_only: bool = False
    ) -> ServiceState:
        """Create the service ``name`` (``projects/P/locations/R/services/S``) and wait for
        the operation: its first revision Ready, or :class:`~mlsgw.errors.OperationFailed`."""
        parent, _, service_id = name.rpartition("/services/")
        request = run_v2.CreateServiceRequest(
            parent=parent,
            service_id=service_id,
            service=new_service(spec),
            validate_only=validate_only,
        )
        with self._errors(f"create Cloud Run service {name}", "run.services.create"):
            operation = self._services.create_service(request=request, timeout=self._timeout)
        return service_state(self._wait(name, operation, "creation"))

    def _wait(self, name: str, operation: Any, what: str) -> run_v2.Service:
        polling = DEFAULT_POLLING.with_timeout(self._operation_timeout)
        with self._errors(f"follow the {what} of {name}"):
            try:
                result: run_v2.Service = operation.result(
                    timeout=self._operation_timeout, polling=polling
                )
            except api.GoogleAPICallError as exc:
                raise errors.OperationFailed(
                    f"the {what} of {name} failed: {exc.message or exc}"
                ) from exc
            except TimeoutError as exc:
                raise errors.Unavailable(
                    f"the {what} of {name} was still running after "
                    f"{self._operation_timeout:.0f} s (operation {operation.operation.name}); "
                    "check it in the console"
                ) from exc
        return result

    def describe_service(self, name: str) -> dict[str, object]:
        """The service resource as JSON (camelCase field names, as ``gcloud`` shows it)."""
        document: dict[str, object] = json_format.MessageToDict(
            run_v2.Service.pb(self._get_raw(name))
        )
        return document

    def get_iam_policy(self, name: str) -> IamPolicy:
        """Read the service's IAM policy with its etag."""
        request = iam_policy_pb2.GetIamPolicyRequest(resource=name)
        with self._errors(f"read the IAM policy of {name}", "run.services.getIamPolicy"):
            raw = self._services.get_iam_policy(request=request, timeout=self._timeout)
        return _policy(raw)

    def set_iam_policy(self, name: str, policy: IamPolicy) -> IamPolicy:
        """Write the policy; the server refuses it (Conflict) when its etag is stale."""
        raw = policy_pb2.Policy(
            version=policy.version,
            etag=policy.etag,
            bindings=[
                policy_pb2.Binding(role=b.role, members=list(b.members)) for b in policy.bindings
            ],
        )
        request = iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=raw)
        with self._errors(f"write the IAM policy of {name}", "run.services.setIamPolicy"):
            written = self._services.set_iam_policy(request=request, timeout=self._timeout)
        return _policy(written)


def _policy(raw: policy_pb2.Policy) -> IamPolicy:
    return IamPolicy(
        bindings=tuple(Binding(b.role, tuple(b.members)) for b in raw.bindings),
        etag=bytes(raw.etag),
        version=int(raw.version),
    )
