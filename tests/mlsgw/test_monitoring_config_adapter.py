"""The alert policy / uptime check / dashboard adapter over gRPC against the stand-in: what it
writes reads back equal, and writes are refused after a concurrent change."""

from __future__ import annotations

import pytest

from mlsgw.errors import Conflict, PermissionDenied
from mlsgw.gcp.clients import Cloud
from mlsgw.gcp.monitoring_config import MonitoringConfigApi
from mlsgw.monitor.dashboard_spec import primary_dashboard
from mlsgw.monitor.rules import PolicySpec, UptimeSpec
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT
from tests.stand_ins.monitoring import MonitoringStandIn

SPEC = PolicySpec("memory", "mlsgw: memory", "up > 0", 900, "warning", "**docs**")


@pytest.fixture
def api(monitoring: MonitoringStandIn) -> MonitoringConfigApi:
    monitoring.projects.add(PROJECT)
    return Cloud(Target(monitoring_endpoint=monitoring.address, timeout=5)).monitoring_config()


def test_a_created_policy_reads_back_as_the_same_spec(api: MonitoringConfigApi) -> None:
    created = api.create_policy(PROJECT, SPEC)
    assert created.spec == SPEC
    (listed,) = api.list_policies(PROJECT)
    assert listed == created


def test_a_policy_changed_since_it_was_read_is_not_overwritten(
    api: MonitoringConfigApi, monitoring: MonitoringStandIn
) -> None:
    state = api.create_policy(PROJECT, SPEC)
    api.update_policy(state, PolicySpec(**{**vars(SPEC), "query": "up > 1"}))
    with pytest.raises(Conflict):
        api.update_policy(state, PolicySpec(**{**vars(SPEC), "query": "up > 2"}))
    (now,) = api.list_policies(PROJECT)
    assert now.spec.query == "up > 1"


def test_an_update_keeps_the_condition_name_and_foreign_labels(
    api: MonitoringConfigApi, monitoring: MonitoringStandIn
) -> None:
    state = api.create_policy(PROJECT, SPEC)
    stored = monitoring.config.policies[state.name]
    stored.user_labels["team"] = "ops"
    condition = stored.conditions[0].name
    (fresh,) = api.list_policies(PROJECT)
    api.update_policy(fresh, PolicySpec(**{**vars(SPEC), "duration_s": 600}))
    updated = monitoring.config.policies[state.name]
    assert updated.conditions[0].name == condition
    assert updated.user_labels["team"] == "ops"


def test_uptime_checks_and_dashboards_read_back_equal(api: MonitoringConfigApi) -> None:
    check = UptimeSpec("health_check", "mlsgw health", "relay.example", "/health", 60, 10)
    assert api.create_uptime_check(PROJECT, check).spec == check
    board = primary_dashboard("svc")
    created = api.create_dashboard(PROJECT, board)
    assert created.spec == board and created.etag


def test_a_dashboard_written_with_a_stale_etag_is_a_conflict(api: MonitoringConfigApi) -> None:
    board = primary_dashboard("svc")
    first = api.create_dashboard(PROJECT, board)
    api.update_dashboard(first, board)
    with pytest.raises(Conflict):
        api.update_dashboard(first, board)


def test_an_unknown_project_is_permission_denied(api: MonitoringConfigApi) -> None:
    with pytest.raises(PermissionDenied):
        api.list_policies("other-proj")
