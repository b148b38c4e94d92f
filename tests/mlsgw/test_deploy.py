"""``mlsgw deploy`` (with automatic rollback) and ``mlsgw scale`` against the stand-in."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.mlsgw.test_rollback import SERVICE_PATH, ledger_lines, traffic, writes
from tests.stand_ins.google import GoogleStandIn

FAST = ["--health-interval", "0"]


def test_deploy_creates_a_revision_that_takes_the_traffic(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """A healthy image: new revision, LATEST 100%, /health verified, known good recorded."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("deploy", "--image", "img:2", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    new = record.revisions[-1]
    assert new.template["containers"][0]["image"] == "img:2"
    assert traffic(record) == [("LATEST", None, 100, None)]
    assert record.latest_ready == new.name
    (line,) = ledger_lines(ledger_path)
    assert line["command"] == "deploy" and line["args"]["image"] == "img:2"  # type: ignore[index]
    assert line["result"]["known_good_revision"] == new.name  # type: ignore[index]


def test_deploy_of_a_failing_revision_rolls_back_automatically_and_exits_1(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """3 consecutive failed health checks: traffic back to the previous revision, exit 1."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    previous = record.revisions[0].name
    google.run.image_behaviour["img:bad"] = "unhealthy"
    result = cli("deploy", "--image", "img:bad", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert f"traffic is back on {previous}" in document["summary"]
    steps = {s["name"]: s for s in document["steps"]}
    assert steps["verify /health"]["status"] == "critical"
    assert steps["verify /health"]["detail"].startswith("3 consecutive failures")
    assert steps["automatic rollback"]["status"] == "ok"
    assert steps["verify /health after rollback"]["status"] == "ok"
    assert traffic(record) == [("REVISION", previous, 100, None)]
    assert len(google.server.calls("GET", "/apps/mlsgw/health")) == 4
    (line,) = ledger_lines(ledger_path)
    assert line["result"]["rolled_back_to"] == previous  # type: ignore[index]
    assert "known_good_revision" not in line["result"]  # type: ignore[operator]


def test_deploy_of_a_revision_that_never_gets_ready_keeps_traffic(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """The operation fails (revision not Ready): exit 1, traffic stays on the old revision."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    google.run.image_behaviour["img:crash"] = "not-ready"
    result = cli("deploy", "--image", "img:crash", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert f"traffic stays on {record.revisions[0].name}" in document["summary"]
    assert "is not ready" in next(s for s in document["steps"] if s["name"] == "update")["detail"]
    assert record.latest_ready == record.revisions[0].name


def test_deploy_no_traffic_tags_a_new_revision_without_moving_traffic(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """--no-traffic --tag: named revision at 0% with its tag; serving revision pinned."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    current = record.revisions[0].name
    result = cli(
        "deploy",
        "--image",
        "img:2",
        "--no-traffic",
        "--tag",
        "canary",
        *target_args,
        "--yes",
        *FAST,
    )
    assert result.exit_code == 0, result.stdout
    new = record.revisions[-1]
    assert new.name.startswith(f"{SERVICE}-canary-")
    assert traffic(record) == [
        ("REVISION", current, 100, None),
        ("REVISION", new.name, 0, "canary"),
    ]
    assert google.server.calls("GET", "/apps/mlsgw/tags/canary/health")
    assert "known_good_revision" not in ledger_lines(ledger_path)[0]["result"]  # type: ignore[operator]
    notice = "traffic is now pinned; `mlsgw traffic --to-latest` to release"
    assert f"{notice} (pinned to {current})." in result.stdout


def test_deploy_no_traffic_needs_a_tag(cli: Cli, target_args: list[str]) -> None:
    """--no-traffic without --tag is a usage error: exit 3."""
    result = cli("deploy", "--image", "img:2", "--no-traffic", *target_args, "--yes")
    assert result.exit_code == 3
    assert "--tag" in result.stderr


def test_deploy_dry_run_validates_and_changes_nothing(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """--dry-run: image before → after, validate_only sent, no new revision."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("deploy", "--image", "img:2", *target_args, "--dry-run", "--json")
    assert result.exit_code == 0
    plan = json.loads(result.stdout)["plan"]
    assert {"field": "image", "before": "img:1", "after": "img:2"}.items() <= plan[0].items()
    assert [c.query.get("validateOnly") for c in google.server.calls("PATCH", SERVICE_PATH)] == [
        "true"
    ]
    assert len(record.revisions) == 1 and writes(google) == []


def test_scale_applies_the_runbook_settings(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """scale --min 2 --max 50 ...: a new revision with those settings; plan shows before → after."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    args = ["--min", "2", "--max", "50", "--concurrency", "60", "--cpu", "2", "--memory", "1Gi"]
    result = cli("scale", *args, *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    template = record.revisions[-1].template
    assert template["scaling"] == {"minInstanceCount": 2, "maxInstanceCount": 50}
    assert template["maxInstanceRequestConcurrency"] == 60
    assert template["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    plan = {c["field"]: (c["before"], c["after"]) for c in json.loads(result.stdout)["plan"]}
    assert plan["min_instances"] == ("1", "2") and plan["memory"] == ("512Mi", "1Gi")
    assert ledger_lines(ledger_path)[0]["args"]["max_instances"] == 50  # type: ignore[index]


def test_scale_to_zero_minimum_is_allowed(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """--min 0 is a real setting, not 'unset'."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("scale", "--min", "0", *target_args, "--yes", *FAST)
    assert result.exit_code == 0, result.stdout
    assert "minInstanceCount" not in record.revisions[-1].template["scaling"]  # proto3: 0 omitted


def test_scale_min_above_max_is_refused(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """--min above the (current or given) maximum: exit 3, nothing written."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("scale", "--min", "20", *target_args, "--yes")
    assert result.exit_code == 3
    assert google.server.calls("PATCH", SERVICE_PATH) == []


def test_scale_without_settings_is_a_usage_error(cli: Cli, target_args: list[str]) -> None:
    """scale with nothing to set: exit 3."""
    assert cli("scale", *target_args, "--yes").exit_code == 3


def test_scale_plan_lists_only_the_values_that_change(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Values already as requested are not in the plan; all of them as requested: no write."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])  # min 1, max 10
    result = cli("scale", "--min", "1", "--max", "20", *target_args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stdout
    plan = [(c["field"], c["before"], c["after"]) for c in json.loads(result.stdout)["plan"]]
    assert plan == [("max_instances", "10", "20")]
    same = cli("scale", "--min", "1", "--max", "10", *target_args, "--yes", *FAST, "--json")
    assert same.exit_code == 0, same.stdout
    document = json.loads(same.stdout)
    assert document["plan"] == [] and document["summary"].startswith("nothing to change")
    assert len(record.revisions) == 1
