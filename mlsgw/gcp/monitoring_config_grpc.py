""":class:`~mlsgw.gcp.monitoring_config.MonitoringConfigApi` over the official clients:
``AlertPolicyServiceClient``, ``UptimeCheckServiceClient`` (``google-cloud-monitoring``) and
``DashboardsServiceClient`` (``google-cloud-monitoring-dashboards``), all gRPC."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.api_core import exceptions as api
from google.api_core.retry import Retry, if_exception_type
from google.cloud import monitoring_dashboard_v1 as dash
from google.cloud import monitoring_v3
from google.protobuf import field_mask_pb2

from mlsgw.errors import Conflict
from mlsgw.gcp.errors import vendor_errors
from mlsgw.gcp.monitoring_config import DashboardState, PolicyState, UptimeState
from mlsgw.monitor.dashboard_spec import DASHBOARD_LABEL, Chart, DashboardSpec, Row
from mlsgw.monitor.rules import RULE_LABEL, PolicySpec, UptimeSpec

_Policy = monitoring_v3.AlertPolicy
_SEVERITY = {
    "critical": _Policy.Severity.CRITICAL,
    "high": _Policy.Severity.ERROR,
    "warning": _Policy.Severity.WARNING,
    "info": _Policy.Severity.SEVERITY_UNSPECIFIED,  # Cloud Monitoring has no INFO level
}
_POLICY_FIELDS = [
    "display_name",
    "documentation",
    "user_labels",
    "conditions",
    "combiner",
    "enabled",
    "severity",
]
EVALUATION_INTERVAL = timedelta(seconds=30)
TITLE_SEPARATOR = " · "
"""Between a row's title and a chart's title in a widget title (rows have no titles)."""


def _seconds(value: Any) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else 0


def _policy_proto(spec: PolicySpec, labels: dict[str, str], condition: str = "") -> _Policy:
    return _Policy(
        display_name=spec.display_name,
        documentation={"content": spec.documentation, "mime_type": "text/markdown"},
        user_labels={**labels, RULE_LABEL: spec.rule_id, "severity": spec.severity},
        conditions=[
            {
                "name": condition,
                "display_name": spec.display_name,
                "condition_prometheus_query_language": {
                    "query": spec.query,
                    "duration": timedelta(seconds=spec.duration_s),
                    "evaluation_interval": EVALUATION_INTERVAL,
                },
            }
        ],
        combiner=_Policy.ConditionCombinerType.OR,
        enabled=spec.enabled,
        severity=_SEVERITY[spec.severity],
    )


def _policy_state(policy: _Policy) -> PolicyState:
    labels = dict(policy.user_labels)
    query, duration = "", 0
    if (
        len(policy.conditions) == 1
        and "condition_prometheus_query_language" in policy.conditions[0]
    ):
        promql = policy.conditions[0].condition_prometheus_query_language
        query, duration = promql.query, _seconds(promql.duration)
    elif policy.conditions:
        query = f"({len(policy.conditions)} condition(s), not one PromQL condition)"
    spec = PolicySpec(
        rule_id=labels.get(RULE_LABEL, ""),
        display_name=policy.display_name,
        query=query,
        duration_s=duration,
        severity=labels.get("severity", ""),
        documentation=policy.documentation.content,
        enabled=policy.enabled is not False,
    )
    mutated = policy.mutation_record.mutate_time
    return PolicyState(policy.name, spec, mutated.isoformat() if mutated else "")


def _uptime_proto(project: str, spec: UptimeSpec) -> monitoring_v3.UptimeCheckConfig:
    return monitoring_v3.UptimeCheckConfig(
        display_name=spec.display_name,
        monitored_resource={
            "type": "uptime_url",
            "labels": {"project_id": project, "host": spec.host},
        },
        http_check={
            "path": spec.path,
            "port": 443,
            "use_ssl": True,
            "validate_ssl": True,
            "request_method": monitoring_v3.UptimeCheckConfig.HttpCheck.RequestMethod.GET,
        },
        period=timedelta(seconds=spec.period_s),
        timeout=timedelta(seconds=spec.timeout_s),
        user_labels={RULE_LABEL: spec.rule_id},
    )


def _uptime_state(check: monitoring_v3.UptimeCheckConfig) -> UptimeState:
    spec = UptimeSpec(
        rule_id=dict(check.user_labels).get(RULE_LABEL, ""),
        display_name=check.display_name,
        host=dict(check.monitored_resource.labels).get("host", ""),
        path=check.http_check.path,
        period_s=_seconds(check.period),
        timeout_s=_seconds(check.timeout),
    )
    return UptimeState(check.name, check.name.rsplit("/", 1)[-1], spec)


def _dashboard_proto(spec: DashboardSpec) -> dash.Dashboard:
    rows = []
    for row in spec.rows:
        widgets = []
        for chart in row.charts:
            data_sets = [
                {
                    "time_series_query": {"prometheus_query": query, "unit_override": chart.unit},
                    "plot_type": dash.XyChart.DataSet.PlotType.LINE,
                }
                for query in chart.queries
            ]
            widgets.append(
                {
                    "title": f"{row.title}{TITLE_SEPARATOR}{chart.title}",
                    "xy_chart": {"data_sets": data_sets},
                }
            )
        rows.append({"weight": 1, "widgets": widgets})
    return dash.Dashboard(
        display_name=spec.display_name,
        row_layout={"rows": rows},
        labels={DASHBOARD_LABEL: spec.key},
    )


def _dashboard_state(board: dash.Dashboard) -> DashboardState:
    rows = []
    for row in board.row_layout.rows:
        charts = []
        row_title = ""
        for widget in row.widgets:
            row_title, _, title = widget.title.rpartition(TITLE_SEPARATOR)
            queries = tuple(d.time_series_query.prometheus_query for d in widget.xy_chart.data_sets)
            units = {d.time_series_query.unit_override for d in widget.xy_chart.data_sets}
            charts.append(Chart(title, queries, units.pop() if len(units) == 1 else ""))
        rows.append(Row(row_title, tuple(charts)))
    key = dict(board.labels).get(DASHBOARD_LABEL, "")
    return DashboardState(
        board.name, board.etag, DashboardSpec(key, board.display_name, tuple(rows))
    )


class MonitoringConfigAdapter:
    """Alert policies, uptime checks and dashboards over gRPC."""

    def __init__(
        self,
        policies: monitoring_v3.AlertPolicyServiceClient,
        uptime: monitoring_v3.UptimeCheckServiceClient,
        dashboards: dash.DashboardsServiceClient,
        *,
        timeout: float,
    ) -> None:
        self._policies = policies
        self._uptime = uptime
        self._dashboards = dashboards
        self._timeout = timeout
        # ``timeout`` is per attempt; the retry deadline is what bounds a dead endpoint.
        self._retry = Retry(
            predicate=if_exception_type(api.ServiceUnavailable),
            initial=0.1,
            maximum=1.0,
            timeout=timeout,
        )

    def _opts(self) -> dict[str, Any]:
        return {"timeout": self._timeout, "retry": self._retry}

    # ---- alert policies -------------------------------------------------------------------

    def list_policies(self, project: str) -> list[PolicyState]:
        """Every alert policy of the project."""
        with vendor_errors("list alert policies", "monitoring.alertPolicies.list"):
            pager = self._policies.list_alert_policies(
                request={"name": f"projects/{project}"}, **self._opts()
            )
            return [_policy_state(p) for p in pager]

    def create_policy(self, project: str, spec: PolicySpec) -> PolicyState:
        """A new labelled policy."""
        with vendor_errors(
            f"create alert policy {spec.rule_id}", "monitoring.alertPolicies.create"
        ):
            created = self._policies.create_alert_policy(
                request={"name": f"projects/{project}", "alert_policy": _policy_proto(spec, {})},
                **self._opts(),
            )
        return _policy_state(created)

    def update_policy(self, state: PolicyState, spec: PolicySpec) -> PolicyState:
        """Replace the policy's managed fields, refused (Conflict) when it changed since read.

        Alert policies carry no etag: the last mutation time read is compared just before the
        update, which narrows a concurrent edit to the time between the two calls."""
        what = f"update alert policy {state.name}"
        with vendor_errors(what, "monitoring.alertPolicies.update"):
            current = self._policies.get_alert_policy(name=state.name, **self._opts())
            if _policy_state(current).guard != state.guard:
                raise Conflict(f"alert policy {state.name} was changed since it was read")
            condition = current.conditions[0].name if len(current.conditions) == 1 else ""
            policy = _policy_proto(spec, dict(current.user_labels), condition)
            policy.name = state.name
            updated = self._policies.update_alert_policy(
                request={
                    "alert_policy": policy,
                    "update_mask": field_mask_pb2.FieldMask(paths=_POLICY_FIELDS),
                },
                **self._opts(),
            )
        return _policy_state(updated)

    # ---- uptime checks --------------------------------------------------------------------

    def list_uptime_checks(self, project: str) -> list[UptimeState]:
        """Every uptime check of the project."""
        with vendor_errors("list uptime checks", "monitoring.uptimeCheckConfigs.list"):
            pager = self._uptime.list_uptime_check_configs(
                request={"parent": f"projects/{project}"}, **self._opts()
            )
            return [_uptime_state(c) for c in pager]

    def create_uptime_check(self, project: str, spec: UptimeSpec) -> UptimeState:
        """A new labelled uptime check."""
        with vendor_errors("create uptime check", "monitoring.uptimeCheckConfigs.create"):
            created = self._uptime.create_uptime_check_config(
                request={
                    "parent": f"projects/{project}",
                    "uptime_check_config": _uptime_proto(project, spec),
                },
                **self._opts(),
            )
        return _uptime_state(created)

    def update_uptime_check(self, state: UptimeState, spec: UptimeSpec) -> UptimeState:
        """Update name, path, period and timeout in place."""
        project = state.name.split("/")[1]
        check = _uptime_proto(project, spec)
        check.name = state.name
        with vendor_errors(
            f"update uptime check {state.name}", "monitoring.uptimeCheckConfigs.update"
        ):
            updated = self._uptime.update_uptime_check_config(
                request={
                    "uptime_check_config": check,
                    "update_mask": field_mask_pb2.FieldMask(
                        paths=["display_name", "http_check", "period", "timeout", "user_labels"]
                    ),
                },
                **self._opts(),
            )
        return _uptime_state(updated)

    def delete_uptime_check(self, state: UptimeState) -> None:
        """Delete the uptime check."""
        with vendor_errors(
            f"delete uptime check {state.name}", "monitoring.uptimeCheckConfigs.delete"
        ):
            self._uptime.delete_uptime_check_config(name=state.name, **self._opts())

    # ---- dashboards -----------------------------------------------------------------------

    def list_dashboards(self, project: str) -> list[DashboardState]:
        """Every dashboard of the project."""
        with vendor_errors("list dashboards", "monitoring.dashboards.list"):
            pager = self._dashboards.list_dashboards(
                request={"parent": f"projects/{project}"}, **self._opts()
            )
            return [_dashboard_state(d) for d in pager]

    def create_dashboard(self, project: str, spec: DashboardSpec) -> DashboardState:
        """A new labelled dashboard."""
        with vendor_errors("create the dashboard", "monitoring.dashboards.create"):
            created = self._dashboards.create_dashboard(
                request={"parent": f"projects/{project}", "dashboard": _dashboard_proto(spec)},
                **self._opts(),
            )
        return _dashboard_state(created)

    def update_dashboard(self, state: DashboardState, spec: DashboardSpec) -> DashboardState:
        """Replace the dashboard, guarded by its etag (Conflict when it changed since read)."""
        board = _dashboard_proto(spec)
        board.name = state.name
        board.etag = state.etag
        with vendor_errors(f"update dashboard {state.name}", "monitoring.dashboards.update"):
            updated = self._dashboards.update_dashboard(
                request={"dashboard": board}, **self._opts()
            )
        return _dashboard_state(updated)
