"""``mlsgw healthcheck`` end to end: real relay, real Google clients, local stand-ins."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest

from tests.mlsgw.conftest import (
    METRICS_KEY,
    PROBE_SECRET,
    PROJECT,
    REGION,
    SERVICE,
    Cli,
    RelayProcess,
)
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.monitoring import MonitoringStandIn
from tests.stand_ins.rest import permission_denied

NAGIOS = re.compile(
    r"^MLSGW (OK|WARNING|CRITICAL|UNKNOWN) - (?P<text>[^|\n]+?)(?: \| (?P<perf>[^\n]+))?\n$"
)
PERF = re.compile(r"^'(?P<label>[^']+)'=(?P<value>-?[\d.]+)(?P<unit>ms|%|s|)(;[\d.]*){0,4}$")


class MetricsSeed(TypedDict, total=False):
    """The :meth:`MonitoringStandIn.seed_cloud_run` metrics a threshold test overrides."""

    error_ratio: float
    p95_ms: float
    memory: float


@pytest.fixture
def healthy(
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    target_args: list[str],
) -> list[str]:
    """A healthy service everywhere; returns the CLI arguments for the full check."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    google.firestore.add_operation(PROJECT)
    google.storage.add_bucket(f"{PROJECT}-backups")
    google.backups.add_export(f"{PROJECT}-backups", fresh_export_name(), {"events": 3})
    google.logging.add_entry(PROJECT, SERVICE, "old failure", age=timedelta(hours=3))
    google.logging.add_entry(PROJECT, SERVICE, "just info", severity="INFO")
    monitoring.seed_cloud_run(PROJECT, SERVICE, error_ratio=0.001, p95_ms=150, memory=0.45)
    return [
        "healthcheck",
        *target_args,
        "--monitoring-endpoint",
        monitoring.address,
        "--url",
        relay.url,
    ]


def fresh_export_name(age: timedelta = timedelta(hours=2)) -> str:
    """The folder name ``mlsgw backup`` gives an export taken ``age`` ago."""
    return (datetime.now(UTC) - age).strftime("%Y%m%dT%H%M%SZ")


def colour_codes(text: str) -> list[str]:
    """SGR parameters that set a colour (NO_COLOR allows bold/italic, not colour)."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        for p in params.split(";"):
            if p and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                found.append(p)
    return found


def statuses(stdout: str) -> dict[str, str]:
    document = json.loads(stdout)
    return {c["name"]: c["status"] for c in document["findings"]}


def test_all_green_exits_0(cli: Cli, healthy: list[str]) -> None:
    """Every check passes against a healthy relay and cloud: green, exit 0."""
    result = cli(*healthy, "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["status"] == "green" and document["ok"] is True
    assert set(statuses(result.stdout).values()) == {"ok"}
    health = next(c for c in document["findings"] if c["name"] == "health")
    assert health["data"]["version"]


def test_a_project_with_no_backups_set_up_is_green_with_the_backups_check_skipped(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    target_args: list[str],
) -> None:
    """No backup bucket and no managed backups (nothing was ever set up; the audit reports
    that): the backups check is skipped with how to start them, and the verdict is green."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    google.firestore.add_operation(PROJECT)
    monitoring.seed_cloud_run(PROJECT, SERVICE, error_ratio=0.001, p95_ms=150, memory=0.45)
    args = [*target_args, "--monitoring-endpoint", monitoring.address, "--url", relay.url]
    result = cli("healthcheck", *args, "--json")
    assert result.exit_code == 0, result.stdout
    backups = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "backups")
    assert backups["status"] == "skipped" and "mlsgw backup schedule" in backups["summary"]
    google.storage.add_bucket(f"{PROJECT}-backups")  # set up, but empty: a warning
    empty = cli("healthcheck", *args, "--json")
    assert empty.exit_code == 1 and statuses(empty.stdout)["backups"] == "warning"


def test_rich_report_shows_every_check_and_the_verdict(cli: Cli, healthy: list[str]) -> None:
    """The human report lists every check and ends with the verdict line."""
    result = cli(*healthy)
    assert result.exit_code == 0
    for name in ("service", "health", "websocket", "logs", "firestore", "metrics", "backups"):
        assert name in result.stdout
    assert "GREEN" in result.stdout.splitlines()[-1]


def test_relay_down_is_red_exit_2(cli: Cli, healthy: list[str]) -> None:
    """/health and the WebSocket unreachable: both critical, red, exit 2."""
    args = healthy[: healthy.index("--url")] + ["--url", "http://127.0.0.1:9", "--json"]
    result = cli(*args)
    assert result.exit_code == 2
    found = statuses(result.stdout)
    assert found["health"] == "critical" and found["websocket"] == "critical"
    assert json.loads(result.stdout)["status"] == "red"


def test_error_logs_in_the_last_hour_are_yellow(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """ERROR entries of the service in the last hour: yellow with count and messages."""
    google.logging.add_entry(PROJECT, SERVICE, "store write failed: disk full")
    google.logging.add_entry(PROJECT, SERVICE, "second failure", severity="CRITICAL")
    google.logging.add_entry(PROJECT, "another-service", "not ours")
    result = cli(*healthy, "--json")
    assert result.exit_code == 1
    logs = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "logs")
    assert logs["status"] == "warning"
    assert logs["data"]["error_entries"] == 2
    assert any("disk full" in d for d in logs["details"])
    sent = google.server.calls("POST", "/v2/entries:list")[-1].body
    assert sent["filter"].startswith('resource.type="cloud_run_revision" AND ')
    assert f'resource.labels.service_name="{SERVICE}"' in sent["filter"]


def test_service_condition_not_ready_is_red(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """The Cloud Run Ready condition failed: the service check is critical, red."""
    google.run.set_condition(SERVICE, 3, "Revision 'mlsgw-00003' is not ready")
    result = cli(*healthy, "--json")
    assert result.exit_code == 2
    service = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "service")
    assert service["status"] == "critical"
    assert "not Ready" in service["summary"] and "mlsgw-00003" in service["summary"]


def test_traffic_pinned_to_an_old_revision_is_yellow(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """Traffic on a revision other than the latest ready one: WARN 'traffic pinned to'."""
    record = google.run.service(SERVICE)
    old = record.revisions[0].name
    record.traffic = [{"type": 2, "revision": old, "percent": 100}]
    result = cli(*healthy, "--json")
    assert result.exit_code == 1
    service = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "service")
    assert service["status"] == "warning"
    assert f"traffic pinned to {old}" in service["summary"]


@pytest.mark.parametrize(
    ("seed", "status", "exit_code"),
    [
        ({"error_ratio": 0.02}, "warning", 1),
        ({"error_ratio": 0.08}, "critical", 2),
        ({"p95_ms": 900.0}, "warning", 1),
        ({"memory": 0.9}, "warning", 1),
    ],
    ids=["5xx-over-1pct", "5xx-over-5pct", "p95-over-500ms", "memory-over-80pct"],
)
def test_metrics_over_the_runbook_thresholds(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    target_args: list[str],
    seed: MetricsSeed,
    status: str,
    exit_code: int,
) -> None:
    """5xx ≥ 1 % (red at 5 %), p95 ≥ 500 ms, memory ≥ 80 % in Cloud Monitoring."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    monitoring.seed_cloud_run(PROJECT, SERVICE, **seed)
    args = ["--monitoring-endpoint", monitoring.address, "--url", relay.url, "--json"]
    result = cli("healthcheck", *target_args, *args)
    assert result.exit_code == exit_code
    assert statuses(result.stdout)["metrics"] == status


def test_no_project_skips_cloud_checks_and_exits_by_the_relay(
    cli: Cli, relay: RelayProcess
) -> None:
    """`healthcheck --url` alone: cloud checks skipped, relay checks decide (green, 0)."""
    result = cli("healthcheck", "--url", relay.url, "--json")
    assert result.exit_code == 0
    found = statuses(result.stdout)
    assert found == {
        "service": "skipped",
        "health": "ok",
        "websocket": "ok",
        "logs": "skipped",
        "firestore": "skipped",
        "metrics": "skipped",
        "backups": "skipped",
    }


def test_no_project_and_relay_down_is_red(cli: Cli) -> None:
    """Without a cloud, a dead relay still makes the verdict red."""
    result = cli("healthcheck", "--url", "http://127.0.0.1:9", "--nagios")
    assert result.exit_code == 2
    assert result.stdout.startswith("MLSGW CRITICAL - health: ")


def test_json_is_one_document_without_colour(
    cli: Cli, healthy: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--json prints exactly one JSON document and no ANSI codes, even with FORCE_COLOR."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = cli(*healthy, "--json")
    document = json.loads(result.stdout)
    assert "\x1b[" not in result.stdout
    assert set(document) >= {"command", "ok", "status", "findings", "run_id", "exit_code"}
    assert document["command"] == "healthcheck"
    assert document["target"]["endpoint"].startswith("http://127.0.0.1:")


def test_no_color_report_has_no_escape_codes(
    cli: Cli, healthy: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_COLOR wins over FORCE_COLOR in the Rich report."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    result = cli(*healthy)
    assert "GREEN" in result.stdout
    assert colour_codes(result.stdout) == []


def test_nagios_line_parses_with_perfdata(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """--nagios prints one plugin line: status word, text, perfdata tokens with thresholds."""
    google.logging.add_entry(PROJECT, SERVICE, "boom")
    result = cli(*healthy, "--nagios")
    assert result.exit_code == 1
    match = NAGIOS.match(result.stdout)
    assert match, result.stdout
    assert match.group(1) == "WARNING"
    assert "logs: 1 ERROR entries" in match.group("text")
    perf = {}
    for token in match.group("perf").split():
        parsed = PERF.match(token)
        assert parsed, token
        perf[parsed["label"]] = float(parsed["value"])
    assert perf["error_logs"] == 1
    assert {"health_latency", "error_ratio", "latency_p95", "memory", "failed_operations"} <= set(
        perf
    )


def test_websocket_probe_key_authenticates_on_an_allowlisted_relay(
    cli: Cli, locked_relay: RelayProcess
) -> None:
    """With --probe-key the WebSocket check does NIP-42 AUTH and gets EOSE."""
    result = cli(
        "healthcheck", "--url", locked_relay.url, "--probe-key", PROBE_SECRET.hex(), "--json"
    )
    assert result.exit_code == 0, result.stdout
    ws = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "websocket")
    assert ws["status"] == "ok" and "authenticated" in ws["summary"]


def test_allowlisted_relay_without_probe_key_is_a_warning(
    cli: Cli, locked_relay: RelayProcess
) -> None:
    """Without a probe key the REQ is closed auth-required: yellow, with a hint."""
    result = cli("healthcheck", "--url", locked_relay.url, "--json")
    assert result.exit_code == 1
    ws = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "websocket")
    assert ws["status"] == "warning" and "--probe-key" in ws["summary"]


def test_wrong_probe_key_is_critical(cli: Cli, locked_relay: RelayProcess) -> None:
    """A probe key that is not on the allowlist fails the WebSocket check."""
    result = cli("healthcheck", "--url", locked_relay.url, "--probe-key", "11" * 32, "--json")
    assert result.exit_code == 2
    assert statuses(result.stdout)["websocket"] == "critical"


def test_malformed_probe_key_is_unknown_exit_3(cli: Cli, relay: RelayProcess) -> None:
    """A probe key that is neither hex nor nsec is a usage error: exit 3."""
    result = cli("healthcheck", "--url", relay.url, "--probe-key", "not-a-key")
    assert result.exit_code == 3
    assert "probe key" in result.stderr


def test_relay_metrics_endpoint_is_used_with_a_metrics_key(cli: Cli, relay: RelayProcess) -> None:
    """Without Cloud Monitoring, --metrics-key reads the relay's own /metrics."""
    result = cli("healthcheck", "--url", relay.url, "--metrics-key", METRICS_KEY, "--json")
    assert result.exit_code == 0
    metrics = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "metrics")
    assert metrics["status"] == "ok" and metrics["summary"].startswith("relay /metrics:")


def test_wrong_metrics_key_is_unknown(cli: Cli, relay: RelayProcess) -> None:
    """A rejected /metrics key means the metrics could not be checked: unknown, exit 3."""
    result = cli("healthcheck", "--url", relay.url, "--metrics-key", "wrong", "--json")
    assert result.exit_code == 3
    assert statuses(result.stdout)["metrics"] == "unknown"


def test_rest_endpoint_only_skips_monitoring(
    cli: Cli, google: GoogleStandIn, relay: RelayProcess, target_args: list[str]
) -> None:
    """--endpoint without --monitoring-endpoint: metrics skipped, never ADC (R-O1)."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    google.storage.add_bucket(f"{PROJECT}-backups")
    google.backups.add_export(f"{PROJECT}-backups", fresh_export_name(), {"events": 3})
    result = cli("healthcheck", *target_args, "--url", relay.url, "--json")
    assert result.exit_code == 0, result.stdout
    metrics = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "metrics")
    assert metrics["status"] == "skipped" and "--monitoring-endpoint" in metrics["summary"]


def test_url_defaults_to_the_service_url(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Without --url the relay checks use the Cloud Run service's URL."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("healthcheck", *target_args, "--json")
    health = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "health")
    assert health["status"] == "ok"
    assert health["data"]["url"] == f"{google.url}/apps/{SERVICE}"


def test_failed_firestore_operation_is_yellow(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """A failed export in the last 24 h is a warning; an old one is not."""
    google.firestore.add_operation(
        PROJECT, state="FAILED", error="bucket gone", age=timedelta(days=3)
    )
    google.firestore.add_operation(PROJECT, state="FAILED", error="permission denied on bucket")
    result = cli(*healthy, "--json")
    assert result.exit_code == 1
    firestore = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "firestore")
    assert firestore["status"] == "warning"
    assert firestore["details"] == ["ExportDocuments op0003: code 13: permission denied on bucket"]


def test_permission_denied_makes_a_check_unknown_with_the_permission(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """A 403 on Logging: that check is unknown and names the missing permission; exit 3."""
    google.server.fail(
        "POST", "/v2/entries:list", permission_denied("logging.logEntries.list", PROJECT)
    )
    result = cli(*healthy, "--json")
    assert result.exit_code == 3
    logs = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "logs")
    assert logs["status"] == "unknown" and "logging.logEntries.list" in logs["summary"]


def test_target_comes_from_env_and_config(
    cli: Cli,
    google: GoogleStandIn,
    relay: RelayProcess,
    tmp_path: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """[ops] in the config gives defaults, MLSGW_* env overrides it, flags override both."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    config = tmp_path / "ops.toml"  # type: ignore[operator]
    config.write_text(f'[ops]\nproject = "{PROJECT}"\nregion = "{REGION}"\nservice = "nope"\n')
    monkeypatch.setenv("MLSGW_CONFIG", str(config))
    monkeypatch.setenv("MLSGW_SERVICE", SERVICE)
    monkeypatch.setenv("MLSGW_GCP_ENDPOINT", google.url)
    monkeypatch.setenv("MLSGW_URL", "http://127.0.0.1:9")
    result = cli("healthcheck", "--url", relay.url, "--json")
    document = json.loads(result.stdout)
    assert document["target"]["service"] == SERVICE
    assert statuses(result.stdout)["service"] == "ok"
    assert statuses(result.stdout)["health"] == "ok"


def test_unknown_option_exits_3_not_2(cli: Cli) -> None:
    """A usage error is UNKNOWN (3) for Nagios, never CRITICAL (2)."""
    result = cli("healthcheck", "--no-such-option")
    assert result.exit_code == 3


def test_a_hung_check_times_out_without_holding_up_the_others(
    cli: Cli, healthy: list[str], google: GoogleStandIn
) -> None:
    """A Logging API that never answers: that check is unknown ('timed out': its own request
    timeout, or the checks' deadline just after it), others report."""
    release = google.server.hold("POST", "/v2/entries:list")
    try:
        result = cli(*healthy, "--timeout", "0.5", "--json")
    finally:
        release.set()
    assert result.exit_code == 3
    logs = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "logs")
    assert logs["status"] == "unknown" and "timed out" in logs["summary"]
    assert statuses(result.stdout)["health"] == "ok"


def test_monitoring_permission_denied_is_unknown(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    target_args: list[str],
) -> None:
    """A gRPC PERMISSION_DENIED from Monitoring is translated: metrics unknown, permission named."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    args = ["--monitoring-endpoint", monitoring.address, "--url", relay.url, "--json"]
    result = cli("healthcheck", *target_args, *args)
    metrics = next(c for c in json.loads(result.stdout)["findings"] if c["name"] == "metrics")
    assert metrics["status"] == "unknown"
    assert "monitoring.timeSeries.list" in metrics["summary"]
