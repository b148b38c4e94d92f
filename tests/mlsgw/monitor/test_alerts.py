"""``mlsgw alerts plan|apply|list`` against the Cloud Monitoring gRPC stand-in, through the CLI
with the real ``google-cloud-monitoring`` clients."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.alert_policy_service.transports import (
    AlertPolicyServiceGrpcTransport,
)
from google.protobuf import field_mask_pb2

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.monitoring import MonitoringStandIn

RULES = Path(__file__).resolve().parents[3] / "config" / "alerts.yaml"


@pytest.fixture
def args(monitoring: MonitoringStandIn) -> list[str]:
    monitoring.projects.add(PROJECT)
    return [
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--service",
        SERVICE,
        "--url",
        "https://relay.example.org",
        "--monitoring-endpoint",
        monitoring.address,
        "--rules",
        str(RULES),
    ]


def _policies_client(monitoring: MonitoringStandIn) -> monitoring_v3.AlertPolicyServiceClient:
    channel = grpc.insecure_channel(monitoring.address, options=[("grpc.enable_http_proxy", 0)])
    return monitoring_v3.AlertPolicyServiceClient(
        transport=AlertPolicyServiceGrpcTransport(channel=channel)
    )


def _json(cli: Cli, *argv: str) -> tuple[int, dict[str, object]]:
    result = cli(*argv, "--json")
    return result.exit_code, json.loads(result.stdout)


RULE_IDS = (
    "error_rate",
    "health_check",
    "firestore_errors",
    "latency_p95",
    "memory",
    "traffic_spike",
)


def _plan(doc: dict[str, object]) -> dict[str, dict[str, str]]:
    """The plan's lines by resource (each resource once)."""
    plan = doc["plan"]
    assert isinstance(plan, list)
    by_resource = {str(line["resource"]): line for line in plan}
    assert len(by_resource) == len(plan), plan
    return by_resource


def _lines(doc: dict[str, object], *fields: str) -> list[tuple[str, ...]]:
    """The plan's lines, each as the tuple of ``fields``."""
    plan = doc["plan"]
    assert isinstance(plan, list)
    return [tuple(str(line[f]) for f in fields) for line in plan]


def test_plan_on_an_empty_project_lists_six_creations_one_per_rule(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    """The uptime check the health-check rule needs is part of that rule's creation."""
    code, doc = _json(cli, "alerts", "plan", *args)
    assert code == 0, doc
    assert len(_lines(doc)) == 6
    plan = _plan(doc)
    assert set(plan) == {f"alert policy {r}" for r in RULE_IDS}
    assert {line["field"] for line in plan.values()} == {"(policy)"}
    health = plan["alert policy health_check"]["after"]
    assert health == (
        "create 'mlsgw: Health check failing' (critical) with its uptime check on "
        "https://relay.example.org/health"
    )
    assert "uptime check" not in plan["alert policy memory"]["after"]
    assert monitoring.config.writes() == []


@pytest.mark.parametrize(
    "where",
    [[], ["--region", REGION, "--service", SERVICE]],
    ids=["project only", "service without the Cloud Run endpoint"],
)
def test_plan_with_only_the_monitoring_stand_in_plans_the_uptime_check_with_an_unknown_host(
    cli: Cli, monitoring: MonitoringStandIn, where: list[str]
) -> None:
    monitoring.projects.add(PROJECT)
    only = ["--project", PROJECT, *where, "--monitoring-endpoint", monitoring.address]
    code, doc = _json(cli, "alerts", "plan", *only, "--rules", str(RULES))
    assert code == 0, doc
    assert len(_lines(doc)) == 6
    health = _plan(doc)["alert policy health_check"]["after"]
    assert health.endswith("with its uptime check on /health (host unknown: give --url)")
    notices = " ".join(doc["notices"])  # type: ignore[arg-type]
    assert "no host for the uptime check of health_check: give --url" in notices
    assert "apply refuses to create the check without one" in notices
    assert monitoring.config.writes() == []


def test_apply_without_a_host_for_a_missing_uptime_check_is_refused_before_any_write(
    cli: Cli, monitoring: MonitoringStandIn, ledger_path: Path
) -> None:
    monitoring.projects.add(PROJECT)
    only = ["--project", PROJECT, "--monitoring-endpoint", monitoring.address]
    code, doc = _json(cli, "alerts", "apply", *only, "--rules", str(RULES), "--yes")
    assert code == 3, doc
    assert "no host for the uptime check of health_check: give --url" in str(doc["summary"])
    assert "nothing was changed" in str(doc["summary"])
    assert monitoring.config.writes() == []
    assert [json.loads(line)["command"] for line in ledger_path.read_text().splitlines()] == [
        "alerts apply"
    ]


def test_without_a_url_an_existing_uptime_check_keeps_its_host_and_nothing_changes(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    writes = len(monitoring.config.writes())
    # the service named, but neither --url nor the Cloud Run endpoint to read its URL from
    only = [*args[:6], "--monitoring-endpoint", monitoring.address]
    code, doc = _json(cli, "alerts", "plan", *only, "--rules", str(RULES))
    assert code == 0 and doc["plan"] == [] and doc["notices"] == [], doc
    code, doc = _json(cli, "alerts", "apply", *only, "--rules", str(RULES), "--yes")
    assert code == 0 and "nothing written" in str(doc["summary"]), doc
    assert len(monitoring.config.writes()) == writes


def test_apply_then_plan_shows_no_change_and_a_second_apply_writes_nothing(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn, ledger_path: Path
) -> None:
    code, doc = _json(cli, "alerts", "apply", *args, "--yes")
    assert code == 0, doc
    assert len(monitoring.config.policies) == 6
    assert len(monitoring.config.uptime_checks) == 1
    writes = len(monitoring.config.writes())

    code, doc = _json(cli, "alerts", "plan", *args)
    assert code == 0 and doc["plan"] == [], doc
    code, doc = _json(cli, "alerts", "apply", *args, "--yes")
    assert code == 0 and "nothing written" in str(doc["summary"])
    assert len(monitoring.config.writes()) == writes
    assert len(monitoring.config.policies) == 6
    commands = [json.loads(line)["command"] for line in ledger_path.read_text().splitlines()]
    assert commands == ["alerts apply", "alerts apply"]


def test_applied_policies_carry_the_label_promql_the_uptime_check_id_and_runbook_docs(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    (check,) = monitoring.config.uptime_checks.values()
    assert check.http_check.path == "/health"
    assert check.monitored_resource.labels["host"] == "relay.example.org"
    check_id = check.name.rsplit("/", 1)[-1]
    by_rule = {p.user_labels["mlsgw_rule_id"]: p for p in monitoring.config.policies.values()}
    health = by_rule["health_check"]
    promql = health.conditions[0].condition_prometheus_query_language
    assert f'check_id="{check_id}"' in promql.query
    assert promql.duration.total_seconds() == 180
    assert by_rule["error_rate"].severity == monitoring_v3.AlertPolicy.Severity.CRITICAL
    assert by_rule["firestore_errors"].severity == monitoring_v3.AlertPolicy.Severity.ERROR
    docs = by_rule["error_rate"].documentation.content
    assert "respond within 15 min" in docs
    assert f"mlsgw healthcheck --project {PROJECT} --region {REGION} --service {SERVICE}" in docs
    assert "respond within 4 h" in by_rule["latency_p95"].documentation.content
    memory = by_rule["memory"].conditions[0].condition_prometheus_query_language
    assert f'service_name="{SERVICE}"' in memory.query and "> 0.85" in memory.query


def test_a_policy_edited_by_hand_shows_as_drift_and_apply_restores_it(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    client = _policies_client(monitoring)
    policy = next(
        p
        for p in client.list_alert_policies(request={"name": f"projects/{PROJECT}"})
        if p.user_labels.get("mlsgw_rule_id") == "memory"
    )
    policy.conditions[0].condition_prometheus_query_language.query = "vector(1) > 0"
    client.update_alert_policy(
        request={
            "alert_policy": policy,
            "update_mask": field_mask_pb2.FieldMask(paths=["conditions"]),
        }
    )

    code, doc = _json(cli, "alerts", "plan", *args)
    assert code == 0
    assert [(line["resource"], line["field"]) for line in doc["plan"]] == [  # type: ignore[attr-defined]
        ("alert policy memory", "query")
    ]
    assert doc["plan"][0]["before"] == "vector(1) > 0"  # type: ignore[index]
    code, listed = _json(cli, "alerts", "list", *args)
    assert code == 1
    states = {f["name"]: f["summary"] for f in listed["findings"]}  # type: ignore[attr-defined]
    assert states["memory"] == "drift (query)" and states["error_rate"] == "in sync"

    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    code, doc = _json(cli, "alerts", "plan", *args)
    assert doc["plan"] == []


def test_an_uptime_check_edited_by_hand_shows_as_a_change_of_the_health_check_rule(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    (check,) = monitoring.config.uptime_checks.values()
    check.http_check.path = "/elsewhere"

    code, doc = _json(cli, "alerts", "plan", *args)
    assert code == 0, doc
    assert _lines(doc, "resource", "field", "before", "after") == [
        ("alert policy health_check", "uptime check path", "/elsewhere", "/health")
    ]
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    assert check.name in monitoring.config.uptime_checks  # updated in place, same id
    assert monitoring.config.uptime_checks[check.name].http_check.path == "/health"
    assert _json(cli, "alerts", "plan", *args)[1]["plan"] == []


def test_a_deleted_uptime_check_is_recreated_with_the_health_check_rule_and_its_policy_follows(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    (old,) = monitoring.config.uptime_checks
    del monitoring.config.uptime_checks[old]

    code, doc = _json(cli, "alerts", "plan", *args)
    assert code == 0, doc
    assert _lines(doc, "resource", "field", "after")[1:] == [
        ("alert policy health_check", "(uptime check)", "create https://relay.example.org/health")
    ]
    assert _lines(doc, "resource", "field")[0] == ("alert policy health_check", "query")
    assert len(_lines(doc)) == 2
    code, listed = _json(cli, "alerts", "list", *args)
    states = {f["name"]: f["summary"] for f in listed["findings"]}  # type: ignore[attr-defined]
    assert code == 1 and states["health_check"].endswith("uptime check missing")

    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    (new,) = monitoring.config.uptime_checks
    assert new != old
    by_rule = {p.user_labels["mlsgw_rule_id"]: p for p in monitoring.config.policies.values()}
    query = by_rule["health_check"].conditions[0].condition_prometheus_query_language.query
    assert f'check_id="{new.rsplit("/", 1)[-1]}"' in query
    assert _json(cli, "alerts", "plan", *args)[1]["plan"] == []


def test_a_new_host_recreates_the_uptime_check_and_the_policy_follows_its_new_id(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    assert cli("alerts", "apply", *args, "--yes").exit_code == 0
    (old,) = monitoring.config.uptime_checks
    moved = [a if a != "https://relay.example.org" else "https://relay.example.net" for a in args]

    code, doc = _json(cli, "alerts", "plan", *moved)
    assert code == 0, doc
    ((resource, field, after),) = _lines(doc, "resource", "field", "after")
    assert (resource, field) == ("alert policy health_check", "uptime check host")
    assert after.startswith("relay.example.net (the check is recreated")
    assert cli("alerts", "apply", *moved, "--yes").exit_code == 0
    (new,) = monitoring.config.uptime_checks
    assert new != old
    assert monitoring.config.uptime_checks[new].monitored_resource.labels["host"] == (
        "relay.example.net"
    )
    by_rule = {p.user_labels["mlsgw_rule_id"]: p for p in monitoring.config.policies.values()}
    query = by_rule["health_check"].conditions[0].condition_prometheus_query_language.query
    assert f'check_id="{new.rsplit("/", 1)[-1]}"' in query
    assert _json(cli, "alerts", "plan", *moved)[1]["plan"] == []


def test_policies_without_the_label_are_never_touched(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    client = _policies_client(monitoring)
    mine = client.create_alert_policy(
        request={
            "name": f"projects/{PROJECT}",
            "alert_policy": {
                "display_name": "mlsgw: High error rate",  # same title, but no label
                "user_labels": {"team": "storage"},
                "combiner": monitoring_v3.AlertPolicy.ConditionCombinerType.OR,
                "conditions": [
                    {
                        "display_name": "hand-made",
                        "condition_prometheus_query_language": {"query": "up == 0"},
                    }
                ],
            },
        }
    )
    code, doc = _json(cli, "alerts", "apply", *args, "--yes")
    assert code == 0, doc
    assert any("without the mlsgw_rule_id label" in n for n in doc["notices"])  # type: ignore[attr-defined]
    assert len(monitoring.config.policies) == 7
    touched = {
        request.alert_policy.name
        for method, request in monitoring.config.rpcs
        if method == "UpdateAlertPolicy"
    }
    assert mine.name not in touched
    assert monitoring.config.policies[mine.name].mutation_record == mine.mutation_record


def test_apply_without_a_terminal_or_yes_is_refused_and_changes_nothing(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    result = cli("alerts", "apply", *args)
    assert result.exit_code == 3
    assert monitoring.config.writes() == []


def test_a_malformed_rules_file_exits_3_naming_the_rule_and_field(
    cli: Cli, args: list[str], tmp_path: Path
) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text(RULES.read_text().replace("duration: 10m", "duration: ten minutes"))
    result = cli("alerts", "plan", *args[:-1], str(bad))
    assert result.exit_code == 3
    assert "rule latency_p95.duration" in result.output


def test_an_unknown_project_is_refused_with_the_permission(cli: Cli, args: list[str]) -> None:
    other = [a if a != PROJECT else "other-proj" for a in args]
    code, doc = _json(cli, "alerts", "plan", *other)
    assert code == 3
    assert "permission denied" in str(doc["summary"]).lower()


def test_a_rules_file_that_is_not_utf8_exits_3_naming_it(
    cli: Cli, args: list[str], tmp_path: Path
) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_bytes(b"\xff\xfe")
    code, doc = _json(cli, "alerts", "plan", *args[:-1], str(bad))
    assert code == 3
    assert f"the alert rules {bad} are not UTF-8 text" in str(doc["summary"])
