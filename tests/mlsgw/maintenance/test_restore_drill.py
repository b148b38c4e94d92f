"""``mlsgw maintenance quarterly``: the restore drill through the CLI, the real Firestore
Admin and Firestore clients against the REST stand-ins."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlsgw.gcp.backup_api import ManagedBackup
from mlsgw.maintenance.restore_drill import newest_backup, scratch_id
from tests.mlsgw.conftest import PROJECT, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.rest import ApiError, permission_denied

COLLECTIONS = {"events": 40, "groups": 2}
SCRATCH = rf"/v1/projects/{PROJECT}/databases/mlsgw-drill-\d{{8}}-\d{{4}}"


def _drill(cli: Cli, google: GoogleStandIn, *extra: str) -> tuple[int, dict[str, object]]:
    result = cli(
        "maintenance",
        "quarterly",
        "--project",
        PROJECT,
        "--service",
        SERVICE,
        "--endpoint",
        google.url,
        "--json",
        *extra,
    )
    document = json.loads(result.stdout)
    found = {f["name"]: f for f in document["findings"]}
    assert list(found) == ["restore_drill"], result.stdout
    return result.exit_code, found["restore_drill"]


def _with_backup(google: GoogleStandIn, age: timedelta = timedelta(hours=5)) -> str:
    google.backups.add_database(PROJECT, collections=COLLECTIONS)
    return google.backups.add_backup(PROJECT, age=age)


def _scratch_databases(google: GoogleStandIn) -> list[str]:
    return [n for n in google.backups.databases if "/databases/mlsgw-drill-" in n]


def _ledger(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_drill_restores_counts_judges_and_deletes_the_scratch_database(
    cli: Cli, google: GoogleStandIn, ledger_path: Path
) -> None:
    backup = _with_backup(google)
    code, drill = _drill(cli, google, "--yes")
    assert code == 0, drill
    assert drill["status"] == "ok"
    assert str(drill["summary"]).startswith(f"42 documents restored from {backup} in ")
    data = drill["data"]
    assert isinstance(data, dict)
    assert data["expected"] == {"documents": 42} and data["restored"] == {"documents": 42}
    assert data["collections"] == COLLECTIONS
    assert data["scratch_deleted"] is True
    assert 4 * 3600 < data["backup_age_s"] < 6 * 3600
    restored = google.server.calls("POST", rf"/v1/projects/{PROJECT}/databases:restore")
    assert restored[0].body["backup"] == backup
    assert restored[0].body["databaseId"] == data["scratch_database"].rsplit("/", 1)[1]
    assert len(google.server.calls("DELETE", SCRATCH)) == 1
    assert _scratch_databases(google) == []  # only the source database is left
    assert google.backups.database(PROJECT) is not None
    (line,) = _ledger(ledger_path)
    assert line["command"] == "maintenance quarterly"
    assert line["args"] == {
        "task": "restore_drill",
        "backup": backup,
        "scratch_database": data["scratch_database"],
    }
    assert line["result"]["status"] == "ok"  # type: ignore[index]


def test_differing_counts_are_critical_and_the_scratch_database_is_still_deleted(
    cli: Cli, google: GoogleStandIn
) -> None:
    backup = _with_backup(google)
    google.backups.backup_contents[backup]["events"] = 39  # the restore lost a document
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    assert drill["status"] == "critical"
    assert str(drill["summary"]).startswith("counts differ: documents 42 → 41")
    assert len(google.server.calls("DELETE", SCRATCH)) == 1
    assert _scratch_databases(google) == []


def test_a_failed_restore_is_critical_and_creates_no_scratch_database(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    google.server.fail(
        "POST", rf"/v1/projects/{PROJECT}/databases:restore", ApiError(500, "backend broke")
    )
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    assert drill["status"] == "critical"
    summary = str(drill["summary"])
    assert summary.startswith("the drill failed while restoring:")
    assert "backend broke" in summary and "deleted (or never created)" in summary
    assert "may still finish" not in summary  # the API answered: the restore did not start
    assert _scratch_databases(google) == []


def test_a_restore_operation_that_fails_halfway_still_deletes_the_scratch_database(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    google.backups.fail_restores.append("restore aborted")
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    summary = str(drill["summary"])
    assert summary.startswith("the drill failed while restoring:")
    assert "restore aborted" in summary
    assert len(google.server.calls("DELETE", SCRATCH)) == 1
    assert _scratch_databases(google) == []


def test_an_existing_scratch_database_is_left_alone_and_reported(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    now = datetime.now(UTC)
    for minute in (now, now + timedelta(minutes=1)):  # whichever minute the drill starts in
        google.backups.add_database(PROJECT, scratch_id(minute), collections={"events": 1})
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    summary = str(drill["summary"])
    assert "already exists (left by an earlier drill?); it was not touched" in summary
    assert "gcloud firestore databases delete --database=mlsgw-drill-" in summary
    assert google.server.calls("POST", rf"/v1/projects/{PROJECT}/databases:restore") == []
    assert google.server.calls("DELETE", SCRATCH) == []
    assert len(_scratch_databases(google)) == 2


def test_a_restore_that_did_not_answer_warns_that_it_may_still_create_the_database(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    google.server.fail(
        "POST", rf"/v1/projects/{PROJECT}/databases:restore", ApiError(503, "overloaded")
    )
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    summary = str(drill["summary"])
    assert summary.startswith("the drill failed while restoring: the API did not answer")
    assert "the restore may still finish and create it" in summary
    assert f"gcloud firestore databases list --project={PROJECT}" in summary


def test_a_failed_count_still_deletes_the_restored_scratch_database(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    google.server.fail(
        "POST",
        SCRATCH + r"/documents:listCollectionIds",
        permission_denied("datastore.entities.list", PROJECT),
    )
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    summary = str(drill["summary"])
    assert summary.startswith("the drill failed while counting the documents: permission")
    assert "datastore.entities.list" in summary
    assert len(google.server.calls("DELETE", SCRATCH)) == 1
    assert _scratch_databases(google) == []


def test_a_scratch_database_that_cannot_be_deleted_is_critical_with_the_gcloud_command(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    google.server.fail(
        "DELETE", SCRATCH, permission_denied("datastore.databases.delete", PROJECT), times=5
    )
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    assert drill["status"] == "critical"
    (left,) = _scratch_databases(google)
    database_id = left.rsplit("/", 1)[1]
    summary = str(drill["summary"])
    assert "the scratch database was NOT deleted: permission denied" in summary
    assert (
        f"`gcloud firestore databases delete --database={database_id} --project={PROJECT}`"
        in summary
    )


def test_a_dry_run_lists_the_plan_and_creates_nothing(
    cli: Cli, google: GoogleStandIn, ledger_path: Path
) -> None:
    backup = _with_backup(google)
    code, drill = _drill(cli, google, "--dry-run")
    assert code == 0
    assert drill["status"] == "info"
    assert str(drill["summary"]).startswith(f"dry run: would restore {backup} into the scratch")
    details = drill["details"]
    assert isinstance(details, list) and len(details) == 3
    assert details[2].startswith("delete mlsgw-drill-")
    assert google.server.calls("POST", rf"/v1/projects/{PROJECT}/databases:restore") == []
    assert google.server.calls("DELETE", SCRATCH) == []
    assert _scratch_databases(google) == [] and _ledger(ledger_path) == []


def test_without_a_terminal_or_yes_nothing_is_created_and_the_exit_code_is_3(
    cli: Cli, google: GoogleStandIn
) -> None:
    _with_backup(google)
    code, drill = _drill(cli, google)
    assert code == 3
    assert drill["status"] == "unknown"
    assert "no terminal to confirm on and no --yes" in str(drill["summary"])
    assert google.server.calls("POST", rf"/v1/projects/{PROJECT}/databases:restore") == []


def test_no_backup_is_critical_and_says_how_to_create_one(cli: Cli, google: GoogleStandIn) -> None:
    google.backups.add_database(PROJECT, collections=COLLECTIONS)
    code, drill = _drill(cli, google, "--yes")
    assert code == 2
    assert drill["status"] == "critical"
    assert "`mlsgw backup schedule" in str(drill["summary"])
    assert _scratch_databases(google) == []


def test_database_drills_only_the_backups_of_that_database(cli: Cli, google: GoogleStandIn) -> None:
    _with_backup(google, age=timedelta(hours=1))  # the newest backup is of (default)
    google.backups.add_database(PROJECT, "relay-2", collections={"events": 5})
    older = google.backups.add_backup(PROJECT, "relay-2", age=timedelta(hours=3))
    code, drill = _drill(cli, google, "--yes", "--database", "relay-2")
    assert code == 0, drill
    restored = google.server.calls("POST", rf"/v1/projects/{PROJECT}/databases:restore")
    assert [r.body["backup"] for r in restored] == [older]
    data = drill["data"]
    assert isinstance(data, dict) and data["collections"] == {"events": 5}
    code, drill = _drill(cli, google, "--yes", "--database", "nope")
    assert code == 2
    assert str(drill["summary"]).startswith(
        f"no managed backup of projects/{PROJECT}/databases/nope to drill with"
    )


def test_an_old_backup_is_a_warning_against_the_rpo(cli: Cli, google: GoogleStandIn) -> None:
    _with_backup(google, age=timedelta(hours=30))
    code, drill = _drill(cli, google, "--yes")
    assert code == 1
    assert "over the 24 h RPO" in str(drill["summary"])
    assert _scratch_databases(google) == []


def test_the_scratch_id_is_named_after_the_minute_the_drill_started() -> None:
    assert scratch_id(datetime(2026, 12, 2, 1, 5, 59, tzinfo=UTC)) == "mlsgw-drill-20261202-0105"


def test_the_newest_ready_backup_is_drilled() -> None:
    def backup(name: str, hours: int, state: str = "READY") -> ManagedBackup:
        taken = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(hours=hours)
        return ManagedBackup(name, "db", taken, None, state, None, None)

    backups = [backup("old", 30), backup("new", 2), backup("creating", 1, "CREATING")]
    chosen = newest_backup(backups)
    assert chosen is not None and chosen.name == "new"
    assert newest_backup([backup("creating", 1, "CREATING")]) is None
