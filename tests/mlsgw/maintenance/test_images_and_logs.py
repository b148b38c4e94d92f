"""Weekly registry images and log retention, monthly base image vulnerabilities: through the
CLI with the real Artifact Registry, Grafeas and Logging clients against the REST stand-in."""

from __future__ import annotations

import json

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn

REPO = f"europe-west1-docker.pkg.dev/{PROJECT}/relay/mlsgw"


def _run(
    cli: Cli, google: GoogleStandIn, schedule: str, task: str
) -> tuple[int, dict[str, object]]:
    result = cli(
        "maintenance",
        schedule,
        "--task",
        task,
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--service",
        SERVICE,
        "--endpoint",
        google.url,
        "--json",
    )
    (finding,) = json.loads(result.stdout)["findings"]
    return result.exit_code, finding


def test_registry_images_of_the_last_revisions_are_all_present(
    cli: Cli, google: GoogleStandIn
) -> None:
    for tag in ("v1", "v2", "v3"):
        google.artifacts.add_image(REPO, (tag,))
    google.run.add_service(PROJECT, REGION, SERVICE, [f"{REPO}:v1", f"{REPO}:v2", f"{REPO}:v3"])
    code, finding = _run(cli, google, "weekly", "registry_images")
    assert code == 0, finding
    assert finding["status"] == "ok"
    assert finding["summary"] == "3 of the last 3 revisions' images present"


def test_an_older_revisions_missing_image_warns_and_the_serving_ones_is_critical(
    cli: Cli, google: GoogleStandIn
) -> None:
    old = google.artifacts.add_image(REPO, ("v1",))
    google.artifacts.add_image(REPO, ("v2",))
    google.run.add_service(PROJECT, REGION, SERVICE, [f"{REPO}:v1", f"{REPO}:v2"])
    google.artifacts.delete_image(REPO, old)
    code, finding = _run(cli, google, "weekly", "registry_images")
    assert code == 1 and finding["status"] == "warning"
    assert f"({REPO}:v1)" in str(finding["summary"])

    google.artifacts.tags.clear()
    code, finding = _run(cli, google, "weekly", "registry_images")
    assert code == 2 and finding["status"] == "critical"


def test_images_outside_artifact_registry_are_listed_as_not_checked(
    cli: Cli, google: GoogleStandIn
) -> None:
    google.run.add_service(PROJECT, REGION, SERVICE, ["docker.io/library/mlsgw:1"])
    code, finding = _run(cli, google, "weekly", "registry_images")
    assert finding["status"] == "skipped"
    assert "1 not in Artifact Registry (not checked)" in str(finding["summary"])


def test_log_retention_warns_about_a_bucket_keeping_less_than_30_days(
    cli: Cli, google: GoogleStandIn
) -> None:
    google.logging.add_bucket(PROJECT, "_Required", 400)
    google.logging.add_bucket(PROJECT, "_Default", 30)
    code, finding = _run(cli, google, "weekly", "log_retention")
    assert code == 0 and finding["status"] == "ok", finding
    assert "_Default 30 d" in str(finding["summary"])
    google.logging.add_bucket(PROJECT, "short", 7, location="europe-west1")
    code, finding = _run(cli, google, "weekly", "log_retention")
    assert code == 1
    assert str(finding["summary"]).startswith("short keep(s) less than 30 days")


def test_base_image_vulnerabilities_count_by_severity_on_the_serving_digest(
    cli: Cli, google: GoogleStandIn
) -> None:
    digest = google.artifacts.add_image(REPO, ("v1",))
    google.run.add_service(PROJECT, REGION, SERVICE, [f"{REPO}:v1"])
    url = f"https://{REPO}@{digest}"
    google.artifacts.add_vulnerability(PROJECT, url, "CVE-2026-0001", "HIGH")
    google.artifacts.add_vulnerability(PROJECT, url, "CVE-2026-0002", "LOW", fix_available=False)
    google.artifacts.add_vulnerability(PROJECT, "https://elsewhere@sha256:0", "CVE-X", "CRITICAL")
    code, finding = _run(cli, google, "monthly", "base_image_vulnerabilities")
    assert code == 1 and finding["status"] == "warning", finding
    assert str(finding["summary"]).startswith("1 high, 1 low on mlsgw@sha256:")
    assert finding["details"][0] == "HIGH CVE-2026-0001 in openssl (fix available)"  # type: ignore[index]

    google.artifacts.add_vulnerability(PROJECT, url, "CVE-2026-0003", "CRITICAL")
    code, finding = _run(cli, google, "monthly", "base_image_vulnerabilities")
    assert code == 2 and finding["status"] == "critical"
