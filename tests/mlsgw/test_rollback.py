"""``mlsgw rollback``, ``traffic --to-latest`` and ``restart`` against the Cloud Run stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlsgw.cli import app
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.cloud_run import ServiceRecord
from tests.stand_ins.google import GoogleStandIn

SERVICE_PATH = f"/v2/projects/{PROJECT}/locations/{REGION}/services/{SERVICE}"
FAST = ["--health-interval", "0"]
PINNED = "traffic is now pinned; `mlsgw traffic --to-latest` to release"
"""The runbook's notice after a change that pins traffic, word for word."""


def ledger_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def traffic(record: ServiceRecord) -> list[tuple[str, str | None, int, str | None]]:
    """The stored traffic as (LATEST|REVISION, revision, percent, tag); proto3 omits zeros."""
    kinds = {1: "LATEST", 2: "REVISION"}
    return [
        (kinds[t["type"]], t.get("revision"), t.get("percent", 0), t.get("tag"))
        for t in record.traffic
    ]


def writes(google: GoogleStandIn) -> list[dict[str, object]]:
    """The PATCH bodies that really changed the service (not validate_only)."""
    return [
        r.body for r in google.server.calls("PATCH", SERVICE_PATH) if "validateOnly" not in r.query
    ]


@pytest.fixture
def broken_latest(google: GoogleStandIn) -> ServiceRecord:
    """Revisions 1 ok, 2 never Ready, 3 Ready but failing /health; traffic on LATEST (3)."""
    google.run.image_behaviour.update({"img:2": "not-ready", "img:3": "unhealthy"})
    return google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2", "img:3"])


def test_rollback_picks_the_newest_ready_older_revision_and_verifies_health(
    cli: Cli,
    google: GoogleStandIn,
    broken_latest: ServiceRecord,
    target_args: list[str],
    ledger_path: Path,
) -> None:
    """Latest broken: traffic goes 100% to revision 1 (2 is not Ready), /health verified."""
    first, second, third = (r.name for r in broken_latest.revisions)
    result = cli("rollback", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["status"] == "done"
    assert traffic(broken_latest) == [("REVISION", first, 100, None)]
    steps = {s["name"]: s for s in document["steps"]}
    assert steps["choose target"]["detail"].startswith(
        f"{first}: newest Ready revision older than {third}"
    )
    assert steps["verify /health"]["status"] == "ok"
    assert f"{PINNED} (pinned to {first})." in document["notices"]
    revisions = {row["revision"]: row for row in document["tables"][0]["rows"]}
    assert revisions[third]["traffic"] == "100%" and revisions[second]["ready"].startswith("no")
    (line,) = ledger_lines(ledger_path)
    assert line["command"] == "rollback"
    assert line["result"]["known_good_revision"] == first  # type: ignore[index]
    assert line["pre_state"]["service"]["serving"] == {third: 100}  # type: ignore[index]


def test_rollback_report_for_people_shows_revisions_plan_and_notice(
    cli: Cli, google: GoogleStandIn, broken_latest: ServiceRecord, target_args: list[str]
) -> None:
    """The Rich report has the revision table, the plan and the pinned-traffic notice."""
    result = cli("rollback", *target_args, "--yes", *FAST)
    assert result.exit_code == 0
    assert "Revisions" in result.stdout and "Plan" in result.stdout
    assert PINNED in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("DONE")


def test_rollback_to_a_not_ready_revision_is_refused(
    cli: Cli,
    google: GoogleStandIn,
    broken_latest: ServiceRecord,
    target_args: list[str],
    ledger_path: Path,
) -> None:
    """--to a revision that is not Ready: exit 3, no write, a refused ledger line."""
    second = broken_latest.revisions[1].name
    result = cli("rollback", *target_args, "--to", second, "--yes", "--json")
    assert result.exit_code == 3
    assert "is not Ready" in json.loads(result.stdout)["summary"]
    assert google.server.calls("PATCH", SERVICE_PATH) == []
    assert traffic(broken_latest) == [("LATEST", None, 100, None)]
    assert ledger_lines(ledger_path)[0]["result"]["outcome"] == "refused"  # type: ignore[index]


def test_rollback_to_an_unknown_revision_is_refused(
    cli: Cli, broken_latest: ServiceRecord, target_args: list[str]
) -> None:
    """--to a name that is not a revision of the service: exit 3."""
    result = cli("rollback", *target_args, "--to", "mlsgw-99999-zzz", "--yes")
    assert result.exit_code == 3
    assert "not a revision" in result.stdout


def test_dry_run_changes_nothing_and_shows_the_validated_plan(
    cli: Cli,
    google: GoogleStandIn,
    broken_latest: ServiceRecord,
    target_args: list[str],
    ledger_path: Path,
) -> None:
    """--dry-run: plan before → after, validated server-side, no change, no ledger line."""
    etag = broken_latest.etag
    first = broken_latest.revisions[0].name
    result = cli("rollback", *target_args, "--dry-run", "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["status"] == "planned"
    (change,) = document["plan"]
    assert change["before"] == "LATEST 100%" and change["after"] == f"{first} 100%"
    validations = google.server.calls("PATCH", SERVICE_PATH)
    assert [v.query.get("validateOnly") for v in validations] == ["true"]
    assert writes(google) == []
    assert broken_latest.etag == etag
    assert traffic(broken_latest) == [("LATEST", None, 100, None)]
    assert not ledger_path.exists()


def test_without_tty_and_without_yes_it_refuses(
    cli: Cli,
    google: GoogleStandIn,
    broken_latest: ServiceRecord,
    target_args: list[str],
    ledger_path: Path,
) -> None:
    """No terminal to ask on and no --yes: exit 3, nothing changed, refusal recorded."""
    result = cli("rollback", *target_args, "--json")
    assert result.exit_code == 3
    assert "no --yes" in json.loads(result.stdout)["summary"]
    assert google.server.calls("PATCH", SERVICE_PATH) == []
    assert traffic(broken_latest) == [("LATEST", None, 100, None)]
    assert ledger_lines(ledger_path)[0]["result"]["outcome"] == "refused"  # type: ignore[index]


def test_concurrent_change_is_retried_not_clobbered(
    cli: Cli, google: GoogleStandIn, broken_latest: ServiceRecord, target_args: list[str]
) -> None:
    """Another operator's change between read and write: 409, re-read, their change kept."""
    first, _, third = (r.name for r in broken_latest.revisions)

    def other_operator(record: ServiceRecord) -> None:
        record.labels["changed-by"] = "other-operator"
        record.traffic = [
            {"type": 1, "percent": 100},
            {"type": 2, "revision": third, "percent": 0, "tag": "canary"},
        ]

    google.run.concurrent_change(other_operator)
    result = cli("rollback", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    assert len(writes(google)) == 2  # the first was refused with 409
    assert broken_latest.labels == {"changed-by": "other-operator"}
    assert traffic(broken_latest) == [
        ("REVISION", first, 100, None),
        ("REVISION", third, 0, "canary"),
    ]
    update = next(s for s in json.loads(result.stdout)["steps"] if s["name"] == "update")
    assert "1 concurrent change(s) re-read and retried" in update["detail"]


def test_rollback_keeps_tags(
    cli: Cli, google: GoogleStandIn, broken_latest: ServiceRecord, target_args: list[str]
) -> None:
    """Tagged targets stay (at 0%) so their URLs keep working."""
    first, _, third = (r.name for r in broken_latest.revisions)
    broken_latest.traffic = [
        {"type": 1, "percent": 100},
        {"type": 2, "revision": first, "percent": 0, "tag": "stable"},
        {"type": 1, "percent": 0, "tag": "latest"},
    ]
    result = cli("rollback", *target_args, "--yes", *FAST)
    assert result.exit_code == 0, result.stdout
    assert traffic(broken_latest) == [
        ("REVISION", first, 100, "stable"),
        ("LATEST", None, 0, "latest"),
    ]


def test_rollback_prefers_the_ledgers_last_known_good(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """A revision recorded as known good wins over the newest older Ready one."""
    google.run.image_behaviour["img:4"] = "unhealthy"
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2", "img:3", "img:4"])
    first, _, third, fourth = (r.name for r in record.revisions)
    assert cli("rollback", *target_args, "--to", first, "--yes", *FAST).exit_code == 0
    record.traffic = [{"type": 1, "percent": 100}]  # someone released it; 4 serves again
    result = cli("rollback", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    assert traffic(record) == [("REVISION", first, 100, None)]
    choose = next(s for s in json.loads(result.stdout)["steps"] if s["name"] == "choose target")
    assert "last known good revision in the ledger" in choose["detail"]
    assert [line["command"] for line in ledger_lines(ledger_path)] == ["rollback", "rollback"]
    assert third != fourth


def test_rollback_to_an_unhealthy_revision_fails_with_exit_1(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """/health failing 3 times after the move: exit 1 and the state is stated."""
    google.run.image_behaviour.update({"img:1": "unhealthy"})
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    result = cli("rollback", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert "/health fails" in document["summary"]
    assert record.traffic[0]["revision"] == record.revisions[0].name
    assert "known_good_revision" not in ledger_lines(ledger_path)[0]["result"]  # type: ignore[operator]


def test_traffic_to_latest_releases_a_pin_and_keeps_tags(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """`traffic --to-latest` sends 100% to LATEST again; tags stay."""
    record = google.run.add_service(
        PROJECT, REGION, SERVICE, ["img:1", "img:2"], traffic={"1": 100}
    )
    first = record.revisions[0].name
    record.traffic.append({"type": 2, "revision": first, "percent": 0, "tag": "old"})
    result = cli("traffic", "--to-latest", *target_args, "--yes", *FAST)
    assert result.exit_code == 0, result.stdout
    assert traffic(record) == [("LATEST", None, 100, None), ("REVISION", first, 0, "old")]
    assert ledger_lines(ledger_path)[0]["command"] == "traffic"


def test_traffic_already_latest_is_a_no_op(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Nothing to change: exit 0 without any write."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("traffic", "--to-latest", *target_args, "--yes")
    assert result.exit_code == 0
    assert "nothing to change" in result.stdout
    assert google.server.calls("PATCH", SERVICE_PATH) == []


def test_traffic_without_to_latest_is_a_usage_error(cli: Cli, target_args: list[str]) -> None:
    """`mlsgw traffic` alone: exit 3 with a hint."""
    result = cli("traffic", *target_args, "--yes")
    assert result.exit_code == 3
    assert "--to-latest" in result.stderr


def test_restart_creates_a_revision_with_restart_time(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """restart: a new revision whose container has RESTART_TIME, health verified."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("restart", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout
    assert len(record.revisions) == 2
    env = record.revisions[-1].template["containers"][0]["env"]
    assert [e["name"] for e in env] == ["RESTART_TIME"]
    assert record.revisions[-1].template["containers"][0]["image"] == "img:1"
    line = ledger_lines(ledger_path)[0]
    assert line["command"] == "restart"
    assert line["result"]["known_good_revision"] == record.revisions[-1].name  # type: ignore[index]


def test_restart_with_pinned_traffic_warns(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """A restart while traffic is pinned says the new revision gets no traffic."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"], traffic={"1": 100})
    result = cli("restart", *target_args, "--yes", *FAST, "--json")
    assert result.exit_code == 0
    assert any("gets no traffic" in n for n in json.loads(result.stdout)["notices"])


def test_missing_service_settings_exit_3(cli: Cli, google: GoogleStandIn) -> None:
    """No --service (nor env, nor [ops]): exit 3 naming what to set."""
    result = cli("rollback", "--project", PROJECT, "--region", REGION, "--endpoint", google.url)
    assert result.exit_code == 3
    assert "--service" in result.stderr and "MLSGW_SERVICE" in result.stderr


def test_no_credentials_exit_3_without_touching_the_network(cli: Cli) -> None:
    """No endpoint override and no ADC: exit 3 with the gcloud hint."""
    result = cli(
        "rollback",
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--service",
        SERVICE,
        "--yes",
        "--json",
    )
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["status"] == "refused"
    assert "gcloud auth application-default login" in document["summary"]


def test_service_not_found_exit_3(cli: Cli, google: GoogleStandIn) -> None:
    """A service that does not exist: refused (exit 3) with the API's message."""
    google.run.add_service(PROJECT, REGION, "other", ["img:1"])
    args = [
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--service",
        SERVICE,
        "--endpoint",
        google.url,
    ]
    result = cli("rollback", *args, "--yes", "--json")
    assert result.exit_code == 3
    assert "does not exist" in json.loads(result.stdout)["summary"]


@pytest.mark.parametrize(("answer", "exit_code"), [("n\n", 3), ("y\n", 0)])
def test_on_a_terminal_the_operator_is_asked(
    cli: Cli,
    google: GoogleStandIn,
    broken_latest: ServiceRecord,
    target_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    exit_code: int,
) -> None:
    """With a TTY and no --yes the question is asked: 'n' refuses (3), 'y' proceeds (0)."""
    monkeypatch.setattr("mlsgw.commands.common.stdin_is_tty", lambda: True)
    result = cli_with_input(answer, "rollback", *target_args, *FAST)
    assert result.exit_code == exit_code, result.output
    assert "Send 100% of traffic of mlsgw to" in result.stderr
    assert bool(writes(google)) is (exit_code == 0)


def cli_with_input(text: str, *args: str) -> Result:
    """Run the CLI with ``text`` on stdin."""
    return CliRunner().invoke(app, list(args), input=text, catch_exceptions=False)
