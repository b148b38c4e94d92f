"""A Cloud Monitoring dashboard managed by ``mlsgw dashboard``, found by its
``mlsgw_dashboard`` label and written with its etag."""

from __future__ import annotations

from mlsgw.gcp.monitoring_config import DashboardState, MonitoringConfigApi
from mlsgw.monitor.dashboard_spec import DashboardSpec


class Dashboard:
    """:class:`~mlsgw.resources.base.Resource` over the dashboard labelled ``key``; the state
    is ``None`` when it does not exist, the change the whole wanted spec."""

    kind = "dashboard"

    def __init__(self, api: MonitoringConfigApi, project: str, key: str) -> None:
        self.api = api
        self.project = project
        self.dashboard_key = key
        self.key = f"dashboard:{key}"
        self.name = f"dashboard {key}"

    def read(self) -> DashboardState | None:
        """The labelled dashboard, or ``None``."""
        found = [
            d for d in self.api.list_dashboards(self.project) if d.spec.key == self.dashboard_key
        ]
        return found[0] if found else None

    def summary(self, state: DashboardState | None) -> object:
        """Name, etag and chart count for the ledger; ``None`` when absent."""
        if state is None:
            return None
        charts = sum(len(r.charts) for r in state.spec.rows)
        return {
            "name": state.name,
            "etag": state.etag,
            "rows": len(state.spec.rows),
            "charts": charts,
        }

    def validate(self, state: DashboardState | None, change: DashboardSpec) -> str:
        """Checked here, without a call: every chart has a query."""
        from mlsgw.errors import UsageError

        empty = [c.title for r in change.rows for c in r.charts if not c.queries]
        if empty:
            raise UsageError(f"{self.name}: charts without a query: {empty}")
        return "checked locally"

    def apply(self, state: DashboardState | None, change: DashboardSpec) -> DashboardState:
        """Create it, or replace it guarded by the etag read."""
        if state is None:
            return self.api.create_dashboard(self.project, change)
        return self.api.update_dashboard(state, change)
