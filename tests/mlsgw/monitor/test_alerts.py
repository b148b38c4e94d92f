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


def _plan_resources(doc: dict[str, object]) -> list[str]:
    plan = doc["plan"]
    assert isinstance(plan, list)
    return [str(line["resource"]) for line in plan]


def test_plan_on_an_empty_project_lists_six_policy_creations_and_the_uptime_check(
    cli: Cli, args: list[str], monitoring: MonitoringStandIn
) -> None:
    code, doc = _json(cli, "alerts", "plan", *args)
    assert code == 0, doc
    resources = _plan_resources(doc)
    policies = [r for r in resources if r.startswith("alert policy ")]
    assert len(policies) == 6
    assert set(policies) == {
        f"alert policy {r}"
        for r in (
            "error_rate",
            "health_check",
            "firestore_errors",
            "latency_p95",
            "memory",
            "traffic_spike",
        )
    }
    assert [r for r in resources if r.startswith("uptime check")] == ["uptime check health_check"]
    assert monitoring.config.writes() == []


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
