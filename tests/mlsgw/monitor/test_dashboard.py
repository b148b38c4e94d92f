"""``mlsgw dashboard plan|apply`` against the Cloud Monitoring gRPC stand-in (real
``google-cloud-monitoring-dashboards`` client)."""

from __future__ import annotations

import json

import pytest

from tests.mlsgw.conftest import PROJECT, SERVICE, Cli
from tests.stand_ins.monitoring import MonitoringStandIn


@pytest.fixture
def args(monitoring: MonitoringStandIn) -> list[str]:
    monitoring.projects.add(PROJECT)
    return ["--project", PROJECT, "--service", SERVICE, "--monitoring-endpoint", monitoring.address]


def test_plan_on_an_empty_project_lists_one_creation(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    result = cli("dashboard", "plan", *args, "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0, doc
    assert [(p["resource"], p["field"]) for p in doc["plan"]] == [
        ("dashboard primary", "(dashboard)")
    ]
    assert "Service health, Performance, MLS, Infrastructure (16 charts)" in doc["plan"][0]["after"]
    assert monitoring.config.writes() == []


def test_apply_then_plan_shows_no_change(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("dashboard", "apply", *args, "--yes").exit_code == 0
    (board,) = monitoring.config.dashboards.values()
    assert board.labels["mlsgw_dashboard"] == "primary"
    titles = [w.title for row in board.row_layout.rows for w in row.widgets]
    assert len(board.row_layout.rows) == 4
    assert "Service health · Active connections" in titles
    assert "MLS · Events by kind (443/445/446/1059)" in titles
    queries = [
        d.time_series_query.prometheus_query
        for row in board.row_layout.rows
        for w in row.widgets
        for d in w.xy_chart.data_sets
    ]
    assert "sum(nostr_relay_connections)" in queries
    writes = len(monitoring.config.writes())

    plan = json.loads(cli("dashboard", "plan", *args, "--json").stdout)
    assert plan["plan"] == []
    again = cli("dashboard", "apply", *args, "--yes", "--json")
    assert again.exit_code == 0 and "nothing written" in json.loads(again.stdout)["summary"]
    assert len(monitoring.config.writes()) == writes


def test_a_dashboard_edited_by_hand_is_replaced_with_its_etag(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("dashboard", "apply", *args, "--yes").exit_code == 0
    (name,) = monitoring.config.dashboards
    board = monitoring.config.dashboards[name]
    board.row_layout.rows[0].widgets[1].xy_chart.data_sets[
        0
    ].time_series_query.prometheus_query = "up"
    etag = board.etag

    plan = json.loads(cli("dashboard", "plan", *args, "--json").stdout)
    assert [p["field"] for p in plan["plan"]] == ["Service health / Active connections"]
    assert cli("dashboard", "apply", *args, "--yes").exit_code == 0
    (method, request) = [c for c in monitoring.config.rpcs if c[0] == "UpdateDashboard"][-1]
    assert request.dashboard.etag == etag
    assert json.loads(cli("dashboard", "plan", *args, "--json").stdout)["plan"] == []
