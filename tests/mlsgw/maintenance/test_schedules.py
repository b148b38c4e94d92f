"""``mlsgw maintenance weekly|monthly`` through the CLI against the stand-ins and a real relay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mlsgw.conftest import (
    METRICS_KEY,
    PROJECT,
    REGION,
    SERVICE,
    Cli,
    RelayProcess,
)
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.monitoring import MonitoringStandIn
from tests.stand_ins.osv import OsvStandIn


def _args(google: GoogleStandIn, monitoring: MonitoringStandIn, relay: RelayProcess) -> list[str]:
    return [
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--service",
        SERVICE,
        "--url",
        relay.url,
        "--endpoint",
        google.url,
        "--monitoring-endpoint",
        monitoring.address,
        "--metrics-key",
        METRICS_KEY,
        "--json",
    ]


def _findings(stdout: str) -> dict[str, dict[str, object]]:
    return {f["name"]: f for f in json.loads(stdout)["findings"]}


@pytest.fixture
def osv(monkeypatch: pytest.MonkeyPatch) -> Iterator[OsvStandIn]:
    """An OSV stand-in for pip-audit (no proxy for loopback), named by MLSGW_OSV_URL."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    stand_in = OsvStandIn().start()
    monkeypatch.setenv("MLSGW_OSV_URL", stand_in.url)
    yield stand_in
    stand_in.stop()


def test_weekly_runs_every_task_against_the_stand_ins_and_the_relay(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    osv: OsvStandIn,
) -> None:
    image = f"europe-west1-docker.pkg.dev/{PROJECT}/relay/mlsgw"
    google.artifacts.add_image(image, ("v1",))
    google.run.add_service(PROJECT, REGION, SERVICE, [f"{image}:v1"])
    google.logging.add_bucket(PROJECT, "_Default", 30)
    monitoring.seed_cloud_run(PROJECT, SERVICE, requests_per_minute=100, p95_ms=200)
    result = cli("maintenance", "weekly", *_args(google, monitoring, relay))
    found = _findings(result.stdout)
    assert result.exit_code == 0, result.stdout
    assert list(found) == [
        "dependency_audit",
        "performance_review",
        "sweep_report",
        "registry_images",
        "log_retention",
    ]
    assert {f["status"] for f in found.values()} == {"ok"}
    review = found["performance_review"]
    assert review["status"] == "ok"
    data = review["data"]
    assert isinstance(data, dict)
    assert data["requests"] == 6000 and data["error_ratio"] == 0.0
    assert data["latency_p95_ms"] == 200.0
    sweeps = found["sweep_report"]
    assert sweeps["status"] == "ok"
    assert sweeps["data"] == {  # a fresh relay has swept nothing yet
        "url": relay.url,
        "swept": {"archive": 0, "keypackage_expired": 0, "keypackage_last_resort": 0},
    }


def test_a_high_error_rate_is_critical_and_sets_the_exit_code(
    cli: Cli, google: GoogleStandIn, monitoring: MonitoringStandIn, relay: RelayProcess
) -> None:
    monitoring.seed_cloud_run(PROJECT, SERVICE, error_ratio=0.1)
    result = cli(
        "maintenance", "weekly", "--task", "performance_review", *_args(google, monitoring, relay)
    )
    assert result.exit_code == 2
    review = _findings(result.stdout)["performance_review"]
    assert review["status"] == "critical"
    assert "above the 5 % alert" in str(review["summary"])


def test_one_task_failing_does_not_stop_the_others_and_sets_the_exit_code(
    cli: Cli, google: GoogleStandIn, monitoring: MonitoringStandIn, relay: RelayProcess
) -> None:
    monitoring.seed_cloud_run(PROJECT, SERVICE)
    args = _args(google, monitoring, relay)
    args[args.index(METRICS_KEY)] = "wrong-key"
    monitoring.projects.discard(PROJECT)  # Monitoring now refuses the project
    result = cli(
        "maintenance", "weekly", "--task", "performance_review", "--task", "sweep_report", *args
    )
    found = _findings(result.stdout)
    assert result.exit_code == 3
    assert found["performance_review"]["status"] == "unknown"
    assert "permission denied" in str(found["performance_review"]["summary"]).lower()
    assert found["sweep_report"]["status"] == "unknown"
    assert "/metrics" in str(found["sweep_report"]["summary"])


def test_monthly_capacity_review_warns_when_peak_instances_near_the_limit(
    cli: Cli, google: GoogleStandIn, monitoring: MonitoringStandIn, relay: RelayProcess
) -> None:
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])  # max 10, concurrency 80
    monitoring.seed_cloud_run(PROJECT, SERVICE, instances=9, concurrency=30, cpu=0.4)
    result = cli(
        "maintenance", "monthly", "--task", "capacity-review", *_args(google, monitoring, relay)
    )
    review = _findings(result.stdout)["capacity_review"]
    assert result.exit_code == 1, result.stdout
    assert review["status"] == "warning"
    assert "peak instances 9 reach 80% of max 10" in str(review["summary"])
    data = review["data"]
    assert isinstance(data, dict)
    assert data["peak_instances"] == 9 and data["concurrency_limit"] == 80


def test_an_unknown_task_name_exits_3_listing_the_schedules_tasks(cli: Cli) -> None:
    result = cli("maintenance", "weekly", "--task", "nope")
    assert result.exit_code == 3
    assert "performance_review" in result.output


def test_monthly_security_audit_reports_the_audit_findings(
    cli: Cli, google: GoogleStandIn, monitoring: MonitoringStandIn, relay: RelayProcess
) -> None:
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    record.ingress = 3
    record.iam["bindings"] = [{"role": "roles/run.invoker", "members": ["allUsers"]}]
    result = cli(
        "maintenance", "monthly", "--task", "security_audit", *_args(google, monitoring, relay)
    )
    audit = _findings(result.stdout)["security_audit"]
    assert audit["status"] in ("warning", "unknown", "critical"), audit
    details = audit["details"]
    assert isinstance(details, list)
    assert any("service.public-invoker" in d for d in details)


def test_the_monthly_security_audit_reviews_the_config_given_by_config(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``mlsgw schedule -c FILE`` writes the monthly line with ``--config FILE``: the
    security audit reviews that file, as ``mlsgw audit -c FILE`` does."""
    monkeypatch.delenv("MLSGW_CONFIG", raising=False)
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    config = tmp_path / "relay.toml"
    config.write_text("[auth]\nenabled = false\n")
    result = cli(
        "maintenance",
        "monthly",
        "--task",
        "security_audit",
        "--config",
        str(config),
        *_args(google, monitoring, relay),
    )
    audit = _findings(result.stdout)["security_audit"]
    details = audit["details"]
    assert isinstance(details, list) and any("config.auth-disabled" in d for d in details), audit


def test_a_dependency_audit_that_cannot_reach_its_database_is_unknown(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("MLSGW_OSV_URL", f"http://127.0.0.1:{port}/v1/query")
    result = cli(
        "maintenance", "weekly", "--task", "dependency_audit", *_args(google, monitoring, relay)
    )
    assert result.exit_code == 3
    assert _findings(result.stdout)["dependency_audit"]["status"] == "unknown"


ONLY_REST = ("--project", PROJECT, "--region", REGION, "--service", SERVICE, "--json")
MONITORING_SKIPPED = "skipped: Cloud Monitoring speaks only gRPC and --endpoint is REST"


def test_weekly_with_only_the_rest_endpoint_skips_the_performance_review(
    cli: Cli, google: GoogleStandIn
) -> None:
    """No Monitoring endpoint: the review is skipped with the reason (not unknown), and the
    other task decides the exit code."""
    google.logging.add_bucket(PROJECT, "_Default", 30)
    tasks = ("--task", "performance_review", "--task", "log_retention")
    result = cli("maintenance", "weekly", *tasks, *ONLY_REST, "--endpoint", google.url)
    found = _findings(result.stdout)
    assert result.exit_code == 0, result.stdout
    review = found["performance_review"]
    assert review["status"] == "skipped"
    assert str(review["summary"]).startswith(MONITORING_SKIPPED)
    assert "give --monitoring-endpoint" in str(review["summary"])
    assert found["log_retention"]["status"] == "ok"


def test_monthly_with_only_the_rest_endpoint_skips_the_capacity_review(
    cli: Cli, google: GoogleStandIn
) -> None:
    """The same for the capacity review: skipped with the reason, exit 0 as the rest passes."""
    image = f"europe-west1-docker.pkg.dev/{PROJECT}/relay/mlsgw"
    google.artifacts.add_image(image, ("v1",))
    google.run.add_service(PROJECT, REGION, SERVICE, [f"{image}:v1"])
    tasks = ("--task", "capacity_review", "--task", "base_image_vulnerabilities")
    result = cli("maintenance", "monthly", *tasks, *ONLY_REST, "--endpoint", google.url)
    found = _findings(result.stdout)
    assert result.exit_code == 0, result.stdout
    review = found["capacity_review"]
    assert review["status"] == "skipped"
    assert str(review["summary"]).startswith(MONITORING_SKIPPED)
    assert found["base_image_vulnerabilities"]["status"] == "ok"
