"""``mlsgw maintenance weekly|monthly`` through the CLI against the stand-ins and a real relay."""

from __future__ import annotations

import json

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


def test_weekly_runs_every_task_against_the_stand_ins_and_the_relay(
    cli: Cli, google: GoogleStandIn, monitoring: MonitoringStandIn, relay: RelayProcess
) -> None:
    image = f"europe-west1-docker.pkg.dev/{PROJECT}/relay/mlsgw"
    google.artifacts.add_image(image, ("v1",))
    google.run.add_service(PROJECT, REGION, SERVICE, [f"{image}:v1"])
    google.logging.add_bucket(PROJECT, "_Default", 30)
    monitoring.seed_cloud_run(PROJECT, SERVICE, requests_per_minute=100, p95_ms=200)
    result = cli("maintenance", "weekly", *_args(google, monitoring, relay))
    found = _findings(result.stdout)
    assert result.exit_code == 0, result.stdout
    assert list(found) == ["performance_review", "sweep_report", "registry_images", "log_retention"]
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
    result = cli("maintenance", "weekly", *_args(google, monitoring, relay))
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
    result = cli("maintenance", "weekly", *args)
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
