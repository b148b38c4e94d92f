"""``mlsgw playbook list|show|run`` end to end: the real CLI, the Google stand-ins, a real
relay, the ledger on disk."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.mlsgw.conftest import PROBE_SECRET, PROJECT, REGION, SERVICE, Cli, RelayProcess
from tests.mlsgw.test_healthcheck import fresh_export_name
from tests.mlsgw.test_incident import closed_port_url
from tests.mlsgw.test_rollback import ledger_lines, writes
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.monitoring import MonitoringStandIn


def run_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("playbook", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def healthy(
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    target_args: list[str],
) -> list[str]:
    """A healthy service on the stand-ins; the target flags for `playbook run`."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    google.storage.add_bucket(f"{PROJECT}-backups")
    google.backups.add_export(f"{PROJECT}-backups", fresh_export_name(), {"events": 3})
    google.logging.add_entry(PROJECT, SERVICE, "old failure", age=timedelta(hours=3))
    monitoring.seed_cloud_run(PROJECT, SERVICE, error_ratio=0.001, p95_ms=150, memory=0.45)
    return [*target_args, "--monitoring-endpoint", monitoring.address, "--url", relay.url]


def test_morning_playbook_runs_end_to_end_against_the_stand_in(
    cli: Cli, healthy: list[str], ledger_path: Path
) -> None:
    """--yes: every step passes (the healthcheck against the stand-ins and a real relay, the
    ledger verified), each step is in the ledger, then the run's own line."""
    key = PROBE_SECRET.hex()
    code, doc = run_json(cli, "run", "morning-health-check", "--yes", *healthy, "--probe-key", key)
    assert code == 0, doc
    assert key not in json.dumps(doc) and key not in ledger_path.read_text()
    assert "***" in doc["data"]["steps"][1]["argv"]
    assert doc["status"] == "done"
    steps = doc["data"]["steps"]
    assert [s["status"] for s in steps] == ["ok"] * 6
    health = steps[1]
    assert health["argv"][0] == "healthcheck" and "--url" in health["argv"]
    assert health["detail"] == "7 ok"
    assert (
        steps[2]["detail"].startswith("2 entries in ")
        and "chain and its head verify" in steps[2]["detail"]
    )
    assert steps[3]["argv"][:2] == ["backup", "list"] and steps[3]["exit_code"] == 0
    assert steps[5]["detail"] == "confirmed by --yes"
    lines = ledger_lines(ledger_path)
    assert [r["command"] for r in lines] == ["playbook step"] * 6 + ["playbook run"]
    assert [r["args"]["step"] for r in lines[:6]] == [1, 2, 3, 4, 5, 6]  # type: ignore[index]
    assert lines[-1]["result"]["outcome"] == "done"  # type: ignore[index]


def test_morning_playbook_passes_on_a_project_with_no_backups_set_up(
    cli: Cli,
    google: GoogleStandIn,
    monitoring: MonitoringStandIn,
    relay: RelayProcess,
    target_args: list[str],
) -> None:
    """Only a service and a relay (no backup bucket, no managed backup): the healthcheck
    skips its backups check and `backup list` lists none, so every step passes."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    monitoring.seed_cloud_run(PROJECT, SERVICE, error_ratio=0.001, p95_ms=150, memory=0.45)
    args = [*target_args, "--monitoring-endpoint", monitoring.address, "--url", relay.url]
    code, doc = run_json(cli, "run", "morning-health-check", "--yes", *args)
    assert code == 0, doc
    assert [s["status"] for s in doc["data"]["steps"]] == ["ok"] * 6


def test_a_failing_step_stops_the_run_with_what_to_do_next(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """The relay is down: the healthcheck is red, the run stops there (exit 1), the advice is
    printed, the later steps are not run and the ledger says so."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    code, doc = run_json(
        cli, "run", "morning-health-check", "--yes", *target_args, "--url", closed_port_url()
    )
    assert code == 1 and doc["status"] == "failed"
    assert "stopped at step 2 (Service health): exit 2" in doc["summary"]
    assert doc["notices"][0].startswith("What to do next: Read the failing check")
    assert "4 later step(s) were not run." in doc["notices"]
    statuses = [row["status"] for row in doc["tables"][0]["rows"]]
    assert statuses == ["OK", "CRITICAL", "NOT RUN", "NOT RUN", "NOT RUN", "NOT RUN"]
    steps = [(s["name"].split(".")[0], s["status"], s["detail"]) for s in doc["steps"]]
    assert [(n, st) for n, st, _ in steps] == [
        ("1", "ok"),
        ("2", "critical"),
        ("3", "skipped"),
        ("4", "skipped"),
        ("5", "skipped"),
        ("6", "skipped"),
    ]
    assert steps[1][2] == doc["data"]["steps"][1]["detail"] and steps[5][2] == "not run"
    lines = ledger_lines(ledger_path)
    assert [r["command"] for r in lines] == ["playbook step", "playbook step", "playbook run"]
    assert lines[1]["result"]["outcome"] == "failed"  # type: ignore[index]
    assert lines[2]["result"]["outcome"] == "failed"  # type: ignore[index]


def test_the_human_report_shows_live_progress_and_the_steps(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Without --json each finished step is printed as it ends, then the table."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli(
        "playbook", "run", "morning-health-check", "--yes", *target_args, "--url", closed_port_url()
    )
    assert result.exit_code == 1
    assert "[1/6]" in result.output and "[2/6]" in result.output
    assert "Morning health check" in result.stdout and "FAILED" in result.stdout
    # The steps are the table's rows: not listed a second time below it.
    assert result.stdout.count("Backups present") == 1


def test_dry_run_lists_the_steps_and_changes_nothing(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """data-corruption --dry-run: `readonly on --dry-run` validated by Cloud Run, the incident
    notice planned, nothing written to the service or the ledger."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    code, doc = run_json(cli, "run", "data-corruption", "--dry-run", *target_args)
    assert code == 0, doc
    assert doc["status"] == "planned"
    by_name = {s["name"]: s for s in doc["data"]["steps"]}
    readonly = by_name["Stop writes (read-only mode)"]
    assert readonly["status"] == "ok" and "--dry-run" in readonly["argv"]
    assert by_name["Declare the SEV1"]["detail"].startswith("dry run:")
    assert by_name["Service healthy with writes on"]["status"] == "skipped"
    assert len(doc["data"]["steps"]) == 12
    assert len(record.revisions) == 1 and writes(google) == []
    assert not ledger_path.exists()


def test_a_check_without_a_terminal_or_yes_is_refused(
    cli: Cli, healthy: list[str], ledger_path: Path
) -> None:
    """No --yes and no terminal: the checklist item cannot be confirmed (exit 3)."""
    code, doc = run_json(cli, "run", "morning-health-check", *healthy)
    assert code == 3 and doc["status"] == "refused"
    assert "stopped at step 6" in doc["summary"] and "no terminal" in doc["summary"]
    assert ledger_lines(ledger_path)[-1]["result"]["outcome"] == "refused"  # type: ignore[index]


def write_playbook(directory: Path, name: str, steps: list[dict[str, Any]]) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(
        yaml.safe_dump({"name": name, "title": name.capitalize(), "steps": steps})
    )


def test_answers_fill_the_commands_and_yes_is_passed_on(
    cli: Cli, google: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """--answer image=img:2 --yes: `deploy --image {image}` deploys img:2 without asking."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    books = tmp_path / "books"
    write_playbook(
        books,
        "ship",
        [{"ask": "Image?", "id": "image"}, {"run": "mlsgw deploy --image {image}"}],
    )
    code, doc = run_json(
        cli,
        "run",
        "ship",
        "--dir",
        str(books),
        "--answer",
        "image=img:2",
        "--yes",
        *target_args,
    )
    assert code == 0, doc
    assert record.revisions[-1].template["containers"][0]["image"] == "img:2"
    assert "--yes" in doc["data"]["steps"][1]["argv"]


def test_a_question_without_default_needs_an_answer_under_yes(
    cli: Cli, google: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    books = tmp_path / "books"
    write_playbook(books, "ship", [{"ask": "Image?", "id": "image"}, {"note": "x"}])
    code, doc = run_json(cli, "run", "ship", "--dir", str(books), "--yes", *target_args)
    assert code == 3 and "--answer image=VALUE" in doc["summary"]


def test_list_json_names_every_playbook_and_invalid_ones_fail(cli: Cli, tmp_path: Path) -> None:
    """`list --json` for scripts; a directory with a malformed playbook exits 1 naming it."""
    code, doc = run_json(cli, "list")
    assert code == 0 and len(doc["data"]["playbooks"]) == 10
    assert {"name", "title", "description", "steps", "path"} <= set(doc["data"]["playbooks"][0])
    books = tmp_path / "books"
    write_playbook(books, "good", [{"note": "fine"}])
    write_playbook(books, "bad", [{"note": "x"}, {"run": "mlsgw nosuch"}])
    code, doc = run_json(cli, "list", "--dir", str(books))
    assert code == 1 and [p["name"] for p in doc["data"]["playbooks"]] == ["good"]
    assert doc["data"]["invalid"] == [
        f"{books / 'bad.yaml'}: step 2: run: `mlsgw nosuch` is not a command of this mlsgw; "
        + doc["data"]["invalid"][0].split("; ", 1)[1]
    ]


def test_show_prints_the_steps_and_run_refuses_a_malformed_playbook(
    cli: Cli, tmp_path: Path
) -> None:
    code, doc = run_json(cli, "show", "security-incident")
    assert code == 0 and doc["data"]["steps"][1]["text"] == "mlsgw lockdown"
    books = tmp_path / "books"
    write_playbook(books, "bad", [{"check": "x", "run": "mlsgw healthcheck"}])
    result = cli("playbook", "run", "bad", "--dir", str(books), "--json")
    assert result.exit_code == 3
    assert "bad.yaml: step 1: needs exactly one of run, check, ask, note" in result.stdout
    code, doc = run_json(cli, "show", "no-such-playbook")
    assert code == 3 and "known: " in doc["summary"]


def test_a_playbook_that_is_not_utf8_is_listed_invalid_and_refused_by_name(
    cli: Cli, tmp_path: Path
) -> None:
    """One binary file does not break `list` for the others; `show` of it is a usage error."""
    books = tmp_path / "books"
    write_playbook(books, "good", [{"note": "fine"}])
    (books / "bin.yaml").write_bytes(b"\xff\xfe")
    code, doc = run_json(cli, "list", "--dir", str(books))
    assert code == 1 and [p["name"] for p in doc["data"]["playbooks"]] == ["good"]
    assert doc["data"]["invalid"] == [
        f"{books / 'bin.yaml'}: is not UTF-8 text (invalid start byte at byte 0)"
    ]
    code, doc = run_json(cli, "show", "bin", "--dir", str(books))
    assert code == 3 and f"{books / 'bin.yaml'}: is not UTF-8 text" in doc["summary"]
