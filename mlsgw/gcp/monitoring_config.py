"""The interface for Cloud Monitoring's configuration: alert policies, uptime checks and
dashboards, read back as the specifications :mod:`mlsgw.monitor` computes (so comparing the
wanted with the actual is plain data). Implemented over gRPC in
:mod:`mlsgw.gcp.monitoring_config_grpc`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mlsgw.monitor.dashboard_spec import DashboardSpec
from mlsgw.monitor.rules import PolicySpec, UptimeSpec


@dataclass(frozen=True)
class PolicyState:
    """An alert policy as read: its name, what it says, and what guards the next write."""

    name: str
    spec: PolicySpec
    """``rule_id`` is ``""`` for a policy without the ``mlsgw_rule_id`` label."""
    guard: str
    """The last mutation's time: an update is refused when it changed since."""


@dataclass(frozen=True)
class UptimeState:
    """An uptime check as read."""

    name: str
    check_id: str
    spec: UptimeSpec


@dataclass(frozen=True)
class DashboardState:
    """A dashboard as read, with the etag that guards the next update."""

    name: str
    etag: str
    spec: DashboardSpec
    """``key`` is ``""`` for a dashboard without the ``mlsgw_dashboard`` label."""


class MonitoringConfigApi(Protocol):
    """Alert policies, uptime checks and dashboards of one project; raises only
    :mod:`mlsgw.errors` exceptions (:class:`~mlsgw.errors.Conflict` on a concurrent change)."""

    def list_policies(self, project: str) -> list[PolicyState]:
        """Every alert policy of the project (managed or not)."""
        ...

    def create_policy(self, project: str, spec: PolicySpec) -> PolicyState:
        """A new policy labelled with ``spec.rule_id``."""
        ...

    def update_policy(self, state: PolicyState, spec: PolicySpec) -> PolicyState:
        """Replace what ``state`` says with ``spec``; Conflict when it changed since read."""
        ...

    def list_uptime_checks(self, project: str) -> list[UptimeState]:
        """Every uptime check of the project."""
        ...

    def create_uptime_check(self, project: str, spec: UptimeSpec) -> UptimeState:
        """A new HTTPS uptime check labelled with ``spec.rule_id``."""
        ...

    def update_uptime_check(self, state: UptimeState, spec: UptimeSpec) -> UptimeState:
        """Update path, period, timeout and name (the host cannot change in place)."""
        ...

    def delete_uptime_check(self, state: UptimeState) -> None:
        """Delete the uptime check."""
        ...

    def list_dashboards(self, project: str) -> list[DashboardState]:
        """Every dashboard of the project."""
        ...

    def create_dashboard(self, project: str, spec: DashboardSpec) -> DashboardState:
        """A new dashboard labelled with ``spec.key``."""
        ...

    def update_dashboard(self, state: DashboardState, spec: DashboardSpec) -> DashboardState:
        """Replace the dashboard, guarded by ``state.etag``."""
        ...
