"""``mlsgw deploy --create``: the first deployment from the tool, against the stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.mlsgw.test_rollback import ledger_lines
from tests.stand_ins.google import GoogleStandIn

FAST = ["--health-interval", "0"]
CREATE_PATH = f"/v2/projects/{PROJECT}/locations/{REGION}/services"
SA = f"mlsgw-relay@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture(autouse=True)
def project(google: GoogleStandIn) -> None:
    """The project exists and has no service yet."""
    google.run.add_project(PROJECT)


def creates(google: GoogleStandIn) -> list[dict[str, object]]:
    """The POST bodies that really created a service (not validate_only)."""
    return [
        r.body
        for r in google.server.calls("POST", CREATE_PATH)
        if r.query.get("validateOnly") != "true"
    ]


def test_deploy_to_a_missing_service_is_refused_and_names_create(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Without --create a missing service is refused (exit 3) with the command that creates it."""
    google.run.add_project(PROJECT)
    result = cli("deploy", "--image", "img:1", *target_args, "--yes", "--json")
    assert result.exit_code == 3
    summary = json.loads(result.stdout)["summary"]
    assert "does not exist" in summary and "mlsgw deploy --create --image img:1" in summary
    assert creates(google) == []


def test_create_sets_up_the_service_for_websocket_clients(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """Timeout 3600 s, session affinity, concurrency, min/max, CPU always allocated, startup
    probe on /health, service account, ingress; the ledger line with the revision."""
    result = cli(
        "deploy",
        "--image",
        "img:1",
        "--create",
        "--service-account",
        SA,
        "--ingress",
        "internal-and-cloud-load-balancing",
        "--min",
        "2",
        "--max",
        "20",
        *target_args,
        "--yes",
        *FAST,
        "--json",
    )
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["status"] == "done"
    record = google.run.service(SERVICE)
    template = record.template
    container = template["containers"][0]
    assert container["image"] == "img:1"
    assert template["timeout"] == "3600s"
    assert template["sessionAffinity"] is True
    assert template["maxInstanceRequestConcurrency"] == 250
    assert template["scaling"] == {"minInstanceCount": 2, "maxInstanceCount": 20}
    assert template["serviceAccount"] == SA
    # With resources set, an absent cpuIdle (proto3 omits false) means CPU always allocated.
    assert container["resources"].get("cpuIdle", False) is False
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert record.ingress == 3  # INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    assert record.invoker_iam_disabled is True
    steps = {s["name"]: s for s in document["steps"]}
    assert steps["create"]["status"] == "ok"
    # Behind a load balancer the service's own URL is not public: nothing to probe there.
    assert steps["verify /health"]["status"] == "skipped"
    assert "ingress internal-and-cloud-load-balancing" in steps["verify /health"]["detail"]
    (line,) = ledger_lines(ledger_path)
    assert line["command"] == "deploy" and line["args"]["create"] is True  # type: ignore[index]
    assert line["pre_state"] == {"service": {"exists": False}}
    assert line["result"]["known_good_revision"] == record.latest_ready  # type: ignore[index]


def test_create_dry_run_is_validated_by_cloud_run_and_creates_nothing(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """--dry-run: every setting in the plan, validate_only sent, no service, no ledger line."""
    result = cli("deploy", "--image", "img:1", "--create", *target_args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["status"] == "planned"
    fields = {c["field"]: c["after"] for c in document["plan"]}
    assert fields["request timeout"] == "3600 s"
    assert fields["session affinity"] == "on"
    assert fields["CPU"] == "1, always allocated"
    assert fields["startup probe"] == "GET /health on port 8080"
    assert fields["service account"] == "(the project's default compute)"
    validations = google.server.calls("POST", CREATE_PATH)
    assert [r.query.get("validateOnly") for r in validations] == ["true"]
    assert google.run.services == {}
    assert ledger_lines(ledger_path) == []


def test_create_without_yes_and_without_a_terminal_is_refused(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """The first deployment is confirmed like any other action."""
    result = cli("deploy", "--image", "img:1", "--create", *target_args, "--json")
    assert result.exit_code == 3
    assert google.run.services == {}


def test_create_of_an_existing_service_deploys_the_image_only(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Run again once the service exists: a normal deployment, its settings left alone."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("deploy", "--image", "img:2", "--create", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    assert creates(google) == []
    assert record.template["containers"][0]["image"] == "img:2"
    assert record.template["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 10}


def test_create_whose_first_revision_never_gets_ready_fails_with_exit_1(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """A container that does not start: the creation's operation fails, exit 1, said so."""
    google.run.image_behaviour["img:crash"] = "not-ready"
    result = cli(
        "deploy", "--image", "img:crash", "--create", *target_args, "--yes", *FAST, "--json"
    )
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    create = next(s for s in document["steps"] if s["name"] == "create")
    assert create["status"] == "critical" and "is not ready" in create["detail"]


def test_service_settings_without_create_are_a_usage_error(
    cli: Cli, target_args: list[str]
) -> None:
    """--min on a plain deploy would be ignored: refused, pointing at `mlsgw scale`."""
    result = cli("deploy", "--image", "img:1", "--min", "2", *target_args, "--yes")
    assert result.exit_code == 3
    assert "mlsgw scale" in result.stderr


def test_create_with_an_unknown_ingress_is_a_usage_error(cli: Cli, target_args: list[str]) -> None:
    """The ingress is checked before anything is read or written."""
    result = cli(
        "deploy", "--image", "img:1", "--create", "--ingress", "everyone", *target_args, "--yes"
    )
    assert result.exit_code == 3
    assert "expected one of all, internal" in result.stderr


def test_create_without_permission_is_refused_naming_the_permission(
    cli: Cli, google: GoogleStandIn
) -> None:
    """A project the caller cannot use: refused (exit 3) with the missing permission."""
    args = ["--project", "no-access", "--region", REGION, "--service", SERVICE]
    result = cli(
        "deploy", "--image", "img:1", "--create", *args, "--endpoint", google.url, "--yes", "--json"
    )
    assert result.exit_code == 3
    summary = json.loads(result.stdout)["summary"]
    assert "run.services.get" in summary or "run.services.create" in summary
    assert "http://" not in summary


def test_create_with_no_traffic_is_refused_before_anything_is_created(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """A first revision cannot stay without traffic: refused (exit 3), nothing created."""
    result = cli(
        "deploy",
        "--image",
        "img:1",
        "--create",
        "--no-traffic",
        "--tag",
        "canary",
        *target_args,
        "--yes",
        "--json",
    )
    assert result.exit_code == 3
    assert "without --no-traffic" in json.loads(result.stdout)["summary"]
    assert google.run.services == {}


def test_create_with_public_ingress_verifies_health_on_the_service_url(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """The default (ingress all, public): /health is verified on the new service's URL."""
    result = cli("deploy", "--image", "img:1", "--create", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    steps = {s["name"]: s["status"] for s in json.loads(result.stdout)["steps"]}
    assert steps == {"create": "ok", "verify /health": "ok"}
    assert google.server.calls("GET", f"/apps/{SERVICE}/health")
