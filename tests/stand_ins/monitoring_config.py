"""Alert policies, uptime checks and dashboards for the Cloud Monitoring gRPC stand-in.

``AlertPolicyService``, ``UptimeCheckService`` (``google.monitoring.v3``) and
``DashboardsService`` (``google.monitoring.dashboard.v1``): List (paged), Get, Create, Update
(with ``update_mask``; an empty mask replaces the whole resource), Delete. Like the API:
policies get a ``mutation_record`` on every write and their conditions get names; uptime
checks get an id derived from their display name; dashboards get an etag, and an update with
a stale etag answers ABORTED. ``user_labels`` are checked as the API does. Filters are not
supported (a non-empty filter answers INVALID_ARGUMENT, so an unexpected query fails loudly).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import grpc
import proto
from google.cloud import monitoring_dashboard_v1 as dash
from google.cloud import monitoring_v3 as mon
from google.protobuf import empty_pb2

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
M = TypeVar("M", bound=proto.Message)
PAGE = 100


class Abort(Exception):
    """Abort the RPC with a status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _copy(message: M) -> M:
    # proto-plus is untyped: deserialize of the message's own class gives that class back.
    return cast(M, type(message).deserialize(type(message).serialize(message)))


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    start = int(token) if token else 0
    size = size or PAGE
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


def _check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"user label {key}={value!r} is invalid: keys [a-z][a-z0-9_-]*, values "
                "[a-z0-9_-]*, at most 63 characters",
            )


def _merge(target: proto.Message, source: proto.Message, paths: list[str]) -> None:
    for path in paths:
        if "." in path:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"stand-in: nested mask path {path}")
        setattr(target, path, getattr(source, path))


class MonitoringConfigStandIn:
    """The state of the three services; :meth:`handlers` serves them."""

    def __init__(self, projects: set[str], lock: threading.Lock) -> None:
        self.projects = projects
        self._lock = lock
        self.policies: dict[str, mon.AlertPolicy] = {}
        self.uptime_checks: dict[str, mon.UptimeCheckConfig] = {}
        self.dashboards: dict[str, dash.Dashboard] = {}
        self.rpcs: list[tuple[str, Any]] = []
        """``(method, request)`` for every call, in order."""
        self._clock = datetime.now(UTC)

    def writes(self) -> list[str]:
        """The methods called that change something."""
        return [m for m, _ in self.rpcs if m.startswith(("Create", "Update", "Delete"))]

    def _now(self) -> datetime:
        # Strictly increasing, so two writes in the same microsecond differ.
        self._clock = max(datetime.now(UTC), self._clock + timedelta(microseconds=1))
        return self._clock

    def _project(self, name: str) -> str:
        project = name.split("/")[1] if name.startswith("projects/") else ""
        if project not in self.projects:
            raise Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission denied (or the resource may not exist) on projects/{project}",
            )
        return project

    # ---- alert policies -----------------------------------------------------------------

    def _stamp_policy(self, policy: mon.AlertPolicy) -> None:
        _check_labels(dict(policy.user_labels))
        for index, condition in enumerate(policy.conditions):
            if not condition.name:
                condition.name = f"{policy.name}/conditions/{uuid.uuid4().hex[:12]}{index}"
        policy.mutation_record = mon.MutationRecord(mutate_time=self._now(), mutated_by="stand-in")

    def list_policies(self, r: mon.ListAlertPoliciesRequest) -> mon.ListAlertPoliciesResponse:
        project = self._project(r.name)
        if r.filter:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "stand-in does not filter policies")
        mine = [p for n, p in self.policies.items() if n.startswith(f"projects/{project}/")]
        page, token = _page(mine, r.page_size, r.page_token)
        return mon.ListAlertPoliciesResponse(
            alert_policies=page, next_page_token=token, total_size=len(mine)
        )

    def get_policy(self, r: mon.GetAlertPolicyRequest) -> mon.AlertPolicy:
        self._project(r.name)
        if r.name not in self.policies:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"alert policy {r.name} does not exist")
        return self.policies[r.name]

    def create_policy(self, r: mon.CreateAlertPolicyRequest) -> mon.AlertPolicy:
        project = self._project(r.name)
        policy = _copy(r.alert_policy)
        policy.name = f"projects/{project}/alertPolicies/{uuid.uuid4().int % 10**19}"
        policy.creation_record = mon.MutationRecord(mutate_time=self._now(), mutated_by="stand-in")
        self._stamp_policy(policy)
        self.policies[policy.name] = policy
        return policy

    def update_policy(self, r: mon.UpdateAlertPolicyRequest) -> mon.AlertPolicy:
        name = r.alert_policy.name
        current = self.get_policy(mon.GetAlertPolicyRequest(name=name))
        paths = list(r.update_mask.paths) if r.update_mask else []
        if paths:
            updated = _copy(current)
            _merge(updated, r.alert_policy, paths)
        else:
            updated = _copy(r.alert_policy)
            updated.creation_record = current.creation_record
        self._stamp_policy(updated)
        self.policies[name] = updated
        return updated

    def delete_policy(self, r: mon.DeleteAlertPolicyRequest) -> empty_pb2.Empty:
        self.get_policy(mon.GetAlertPolicyRequest(name=r.name))
        del self.policies[r.name]
        return empty_pb2.Empty()

    # ---- uptime checks ------------------------------------------------------------------

    def list_uptime(
        self, r: mon.ListUptimeCheckConfigsRequest
    ) -> mon.ListUptimeCheckConfigsResponse:
        project = self._project(r.parent)
        if r.filter:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "stand-in does not filter uptime checks")
        mine = [c for n, c in self.uptime_checks.items() if n.startswith(f"projects/{project}/")]
        page, token = _page(mine, r.page_size, r.page_token)
        return mon.ListUptimeCheckConfigsResponse(
            uptime_check_configs=page, next_page_token=token, total_size=len(mine)
        )

    def get_uptime(self, r: mon.GetUptimeCheckConfigRequest) -> mon.UptimeCheckConfig:
        self._project(r.name)
        if r.name not in self.uptime_checks:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"uptime check {r.name} does not exist")
        return self.uptime_checks[r.name]

    def create_uptime(self, r: mon.CreateUptimeCheckConfigRequest) -> mon.UptimeCheckConfig:
        project = self._project(r.parent)
        check = _copy(r.uptime_check_config)
        _check_labels(dict(check.user_labels))
        slug = re.sub(r"[^a-z0-9]+", "-", check.display_name.lower()).strip("-")[:40]
        check.name = f"projects/{project}/uptimeCheckConfigs/{slug}-{uuid.uuid4().hex[:8]}"
        self.uptime_checks[check.name] = check
        return check

    def update_uptime(self, r: mon.UpdateUptimeCheckConfigRequest) -> mon.UptimeCheckConfig:
        name = r.uptime_check_config.name
        current = self.get_uptime(mon.GetUptimeCheckConfigRequest(name=name))
        paths = list(r.update_mask.paths) if r.update_mask else []
        if "monitored_resource" in paths:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "monitored_resource cannot be updated")
        updated = _copy(current)
        _merge(
            updated,
            r.uptime_check_config,
            paths or ["display_name", "http_check", "period", "timeout"],
        )
        _check_labels(dict(updated.user_labels))
        self.uptime_checks[name] = updated
        return updated

    def delete_uptime(self, r: mon.DeleteUptimeCheckConfigRequest) -> empty_pb2.Empty:
        self.get_uptime(mon.GetUptimeCheckConfigRequest(name=r.name))
        del self.uptime_checks[r.name]
        return empty_pb2.Empty()

    # ---- dashboards ---------------------------------------------------------------------

    def list_dashboards(self, r: dash.ListDashboardsRequest) -> dash.ListDashboardsResponse:
        project = self._project(r.parent)
        mine = [d for n, d in self.dashboards.items() if n.startswith(f"projects/{project}/")]
        page, token = _page(mine, r.page_size, r.page_token)
        return dash.ListDashboardsResponse(dashboards=page, next_page_token=token)

    def get_dashboard(self, r: dash.GetDashboardRequest) -> dash.Dashboard:
        self._project(r.name)
        if r.name not in self.dashboards:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"dashboard {r.name} does not exist")
        return self.dashboards[r.name]

    def create_dashboard(self, r: dash.CreateDashboardRequest) -> dash.Dashboard:
        project = self._project(r.parent)
        board = _copy(r.dashboard)
        board.name = f"projects/{project}/dashboards/{uuid.uuid4()}"
        board.etag = uuid.uuid4().hex
        if not r.validate_only:
            self.dashboards[board.name] = board
        return board

    def update_dashboard(self, r: dash.UpdateDashboardRequest) -> dash.Dashboard:
        current = self.get_dashboard(dash.GetDashboardRequest(name=r.dashboard.name))
        if r.dashboard.etag and r.dashboard.etag != current.etag:
            raise Abort(grpc.StatusCode.ABORTED, "etag mismatch: the dashboard changed")
        board = _copy(r.dashboard)
        board.etag = uuid.uuid4().hex
        if not r.validate_only:
            self.dashboards[board.name] = board
        return board

    def delete_dashboard(self, r: dash.DeleteDashboardRequest) -> empty_pb2.Empty:
        self.get_dashboard(dash.GetDashboardRequest(name=r.name))
        del self.dashboards[r.name]
        return empty_pb2.Empty()

    # ---- serving ------------------------------------------------------------------------

    def _unary(self, method: str, req: Any, resp: Any, impl: Callable[[Any], Any]) -> Any:
        serialize = resp.serialize if hasattr(resp, "serialize") else resp.SerializeToString

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                with self._lock:
                    self.rpcs.append((method, request))
                    result = impl(request)
                    return _copy(result) if isinstance(result, proto.Message) else result
            except Abort as exc:
                context.abort(exc.code, str(exc))
            except Exception as exc:  # a bug in the stand-in must not look like an API answer
                context.abort(grpc.StatusCode.INTERNAL, f"stand-in bug: {exc!r}")

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=req.deserialize, response_serializer=serialize
        )

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """The three services' generic handlers."""
        u = self._unary
        E = empty_pb2.Empty
        return [
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.AlertPolicyService",
                {
                    "ListAlertPolicies": u(
                        "ListAlertPolicies",
                        mon.ListAlertPoliciesRequest,
                        mon.ListAlertPoliciesResponse,
                        self.list_policies,
                    ),
                    "GetAlertPolicy": u(
                        "GetAlertPolicy",
                        mon.GetAlertPolicyRequest,
                        mon.AlertPolicy,
                        self.get_policy,
                    ),
                    "CreateAlertPolicy": u(
                        "CreateAlertPolicy",
                        mon.CreateAlertPolicyRequest,
                        mon.AlertPolicy,
                        self.create_policy,
                    ),
                    "UpdateAlertPolicy": u(
                        "UpdateAlertPolicy",
                        mon.UpdateAlertPolicyRequest,
                        mon.AlertPolicy,
                        self.update_policy,
                    ),
                    "DeleteAlertPolicy": u(
                        "DeleteAlertPolicy", mon.DeleteAlertPolicyRequest, E, self.delete_policy
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.UptimeCheckService",
                {
                    "ListUptimeCheckConfigs": u(
                        "ListUptimeCheckConfigs",
                        mon.ListUptimeCheckConfigsRequest,
                        mon.ListUptimeCheckConfigsResponse,
                        self.list_uptime,
                    ),
                    "GetUptimeCheckConfig": u(
                        "GetUptimeCheckConfig",
                        mon.GetUptimeCheckConfigRequest,
                        mon.UptimeCheckConfig,
                        self.get_uptime,
                    ),
                    "CreateUptimeCheckConfig": u(
                        "CreateUptimeCheckConfig",
                        mon.CreateUptimeCheckConfigRequest,
                        mon.UptimeCheckConfig,
                        self.create_uptime,
                    ),
                    "UpdateUptimeCheckConfig": u(
                        "UpdateUptimeCheckConfig",
                        mon.UpdateUptimeCheckConfigRequest,
                        mon.UptimeCheckConfig,
                        self.update_uptime,
                    ),
                    "DeleteUptimeCheckConfig": u(
                        "DeleteUptimeCheckConfig",
                        mon.DeleteUptimeCheckConfigRequest,
                        E,
                        self.delete_uptime,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.monitoring.dashboard.v1.DashboardsService",
                {
                    "ListDashboards": u(
                        "ListDashboards",
                        dash.ListDashboardsRequest,
                        dash.ListDashboardsResponse,
                        self.list_dashboards,
                    ),
                    "GetDashboard": u(
                        "GetDashboard", dash.GetDashboardRequest, dash.Dashboard, self.get_dashboard
                    ),
                    "CreateDashboard": u(
                        "CreateDashboard",
                        dash.CreateDashboardRequest,
                        dash.Dashboard,
                        self.create_dashboard,
                    ),
                    "UpdateDashboard": u(
                        "UpdateDashboard",
                        dash.UpdateDashboardRequest,
                        dash.Dashboard,
                        self.update_dashboard,
                    ),
                    "DeleteDashboard": u(
                        "DeleteDashboard", dash.DeleteDashboardRequest, E, self.delete_dashboard
                    ),
                },
            ),
        ]
