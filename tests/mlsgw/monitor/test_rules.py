"""Loading and rendering ``config/alerts.yaml`` (pure, no I/O beyond reading the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsgw.errors import UsageError
from mlsgw.monitor.dashboard_spec import primary_dashboard
from mlsgw.monitor.rules import load_rules, parse_rules, policy_spec, uptime_spec

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "alerts.yaml"
VALUES = {"project": "p", "region": "r", "service": "svc"}


def test_the_shipped_file_holds_the_runbooks_six_rules() -> None:
    rules = {r.id: r for r in load_rules(SHIPPED)}
    assert {
        rid: (r.severity.name, r.duration_s // 60, r.severity.response_time)
        for rid, r in rules.items()
    } == {
        "error_rate": ("critical", 5, "15 min"),
        "health_check": ("critical", 3, "15 min"),
        "firestore_errors": ("high", 5, "1 h"),
        "latency_p95": ("warning", 10, "4 h"),
        "memory": ("warning", 15, "4 h"),
        "traffic_spike": ("info", 20, "next business day"),
    }
    assert rules["health_check"].uptime is not None
    assert rules["health_check"].uptime.path == "/health"
    assert "> 0.05" in rules["error_rate"].query
    assert "> 1000" in rules["latency_p95"].query
    assert "1.5 *" in rules["traffic_spike"].query and "offset 1w" in rules["traffic_spike"].query


def test_policy_spec_fills_placeholders_and_documents_command_and_response_time() -> None:
    rules = {r.id: r for r in load_rules(SHIPPED)}
    spec = policy_spec(rules["health_check"], VALUES, "chk-123")
    assert 'check_id="chk-123"' in spec.query
    assert "respond within 15 min" in spec.documentation
    assert "`mlsgw healthcheck --project p --region r --service svc`" in spec.documentation
    check = uptime_spec(rules["health_check"], "relay.example")
    assert check is not None and (check.host, check.path, check.period_s) == (
        "relay.example",
        "/health",
        60,
    )
    assert uptime_spec(rules["memory"], "relay.example") is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("id: memory", "id: Memory!"), "rules[4].id"),
        (("severity: high", "severity: urgent"), "rule firestore_errors.severity"),
        (("duration: 15m", "duration: 15"), "rule memory.duration"),
        (("path: /health", "path: health"), "rule health_check.uptime.path"),
        (("id: traffic_spike", "id: memory"), "repeated: ['memory']"),
        (("command: mlsgw maintenance monthly", "command: gcloud"), "rule traffic_spike.command"),
    ],
)
def test_a_malformed_file_names_the_rule_and_the_field(edit: tuple[str, str], message: str) -> None:
    text = SHIPPED.read_text().replace(*edit, 1)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rules(text, "alerts.yaml")


def test_an_uptime_rule_must_name_its_check_id() -> None:
    text = SHIPPED.read_text().replace('check_id="${uptime_check_id}"', 'check_id="x"')
    with pytest.raises(UsageError, match="uptime_check_id"):
        parse_rules(text, "alerts.yaml")


def test_the_dashboard_has_four_rows_of_four_charts_for_the_service() -> None:
    spec = primary_dashboard("svc")
    assert [r.title for r in spec.rows] == [
        "Service health",
        "Performance",
        "MLS",
        "Infrastructure",
    ]
    assert all(len(r.charts) == 4 for r in spec.rows)
    latency = spec.rows[1].charts[0]
    assert [q.split(",")[0] for q in latency.queries] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert all('service_name="svc"' in q for q in spec.rows[0].charts[2].queries)


def test_a_rules_file_that_is_not_utf8_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_bytes(b"rules:\n  - id: \xe9\n")
    with pytest.raises(UsageError, match=f"the alert rules {path} are not UTF-8 text"):
        load_rules(path)
