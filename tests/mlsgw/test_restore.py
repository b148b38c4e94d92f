"""``mlsgw restore``: in place from an export (traffic stopped meanwhile), resume/reopen after
a failure, and ``--to-database`` from a managed backup or PITR, end to end against the
stand-ins and a real relay."""

from __future__ import annotations

import json
import os
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from mlsgw.backups.restore import run_restore
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.output import SpinnerReporter, stderr_console
from mlsgw.runbook.context import RunContext
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli, RelayProcess
from tests.stand_ins.cloud_run import INGRESS_ALL, INGRESS_INTERNAL
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.rest import ApiError, Json

BUCKET = f"{PROJECT}-backups"
DB = f"projects/{PROJECT}/databases/(default)"


@pytest.fixture
def world(google: GoogleStandIn, relay: RelayProcess) -> GoogleStandIn:
    """A public service whose URL is a real relay, a database with 42 documents, a bucket."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    google.run.public_urls[SERVICE] = relay.url
    google.backups.add_database(PROJECT, collections={"events": 40, "groups": 2}, pitr=True)
    google.storage.add_bucket(BUCKET)
    return google


@pytest.fixture
def export(cli: Cli, world: GoogleStandIn, target_args: list[str]) -> str:
    """An export taken by `mlsgw backup` (manifest with 42 documents); then the data moves on."""
    result = cli("backup", *target_args, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    database = world.backups.database(PROJECT)
    assert database is not None
    database.collections.update(events=55)
    uri: str = json.loads(result.stdout)["data"]["result"]["export"]
    return uri


def ledger_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def record_ingress_at_import(google: GoogleStandIn) -> list[int]:
    seen: list[int] = []
    google.backups.on_import.append(lambda _: seen.append(google.run.service(SERVICE).ingress))
    return seen


def test_restore_stops_traffic_for_the_import_and_reopens_it(
    cli: Cli,
    world: GoogleStandIn,
    export: str,
    target_args: list[str],
    relay: RelayProcess,
    ledger_path: Path,
) -> None:
    """Happy path: ingress internal while importing, validated through the internal URL, the
    saved ingress back afterwards, healthcheck green; ledger: started, then done."""
    at_import = record_ingress_at_import(world)
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    assert at_import == [INGRESS_INTERNAL]
    service = world.run.service(SERVICE)
    assert service.ingress == INGRESS_ALL and service.ingress_history == [2, 1]
    # The import writes the export back and keeps the 15 events written since.
    assert world.backups.database(PROJECT).collections["events"] == 55  # type: ignore[union-attr]
    document = json.loads(result.stdout)
    steps = {s["name"]: s["status"] for s in document["steps"]}
    assert steps["validate counts"] == "ok" and steps["validate REQ"] == "ok"
    assert steps["collection counts"] == "ok"
    assert steps["reopen traffic"] == "ok" and steps["healthcheck"] == "ok"
    assert document["data"]["result"]["collection_counts"] == {"events": 55, "groups": 2}
    outcomes = [line["result"]["outcome"] for line in ledger_lines(ledger_path)]  # type: ignore[index]
    assert outcomes[-2:] == ["started", "done"]
    assert ledger_lines(ledger_path)[-2]["pre_state"]["ingress"] == "all"  # type: ignore[index]
    assert cli("ledger", "verify").exit_code == 0


def test_a_malformed_probe_key_is_refused_before_traffic_stops(
    cli: Cli,
    world: GoogleStandIn,
    export: str,
    target_args: list[str],
    relay: RelayProcess,
) -> None:
    """The probe key is only used to validate, after the import: a bad one is refused
    first (exit 3), with the service and the data untouched."""
    at_import = record_ingress_at_import(world)
    result = cli(
        "restore", export, *target_args, "--validate-url", relay.url,
        "--probe-key", "not-a-key", "--yes", "--json",
    )  # fmt: skip
    assert result.exit_code == 3, result.stdout
    assert "probe key" in result.stdout
    assert at_import == []
    assert world.run.service(SERVICE).ingress_history == []
    assert world.backups.database(PROJECT).collections["events"] == 55  # type: ignore[union-attr]


def test_confirmation_names_the_backup_and_its_age(
    world: GoogleStandIn, tmp_path: Path, relay: RelayProcess
) -> None:
    """The question asked before anything changes names the export and how old it is."""
    taken = (datetime.now(UTC) - timedelta(hours=5, minutes=3)).strftime("%Y%m%dT%H%M%SZ")
    uri = world.backups.add_export(BUCKET, taken, {"events": 40, "groups": 2})
    target = Target(project=PROJECT, region=REGION, service=SERVICE, endpoint=world.url, timeout=5)
    cloud = Cloud(target)
    questions: list[str] = []
    ctx = RunContext(
        command="restore",
        target=target,
        cloud=cloud,
        ledger=Ledger.at(str(tmp_path / "ledger.jsonl"), os.environ, cloud),
        reporter=SpinnerReporter(stderr_console(), None),
        run_id="20261201T000000Z-abcdef",
        confirm=questions.append,
    )
    report = run_restore(ctx, uri, validate_url=relay.url)
    assert report.outcome.value == "done", report
    [question] = questions
    assert uri in question and "5 h 3 min ago" in question
    assert "Public traffic stops" in question


def test_failed_import_keeps_traffic_stopped_and_names_the_next_commands(
    cli: Cli,
    world: GoogleStandIn,
    export: str,
    target_args: list[str],
    relay: RelayProcess,
) -> None:
    """The import fails: exit 1, ingress stays internal, later steps not run, and the printed
    commands work: --resume finishes the restore, as --reopen would reopen traffic."""
    world.backups.fail_imports.append("Google Cloud Storage read failed")
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert world.run.service(SERVICE).ingress == INGRESS_INTERNAL
    statuses = {s["name"]: s["status"] for s in document["steps"]}
    assert statuses["stop traffic"] == "ok" and statuses["import"] == "critical"
    assert statuses["validate"] == statuses["reopen traffic"] == "skipped"
    assert "traffic stays stopped" in document["summary"]
    run_id = document["run_id"]
    resume, reopen, gcloud = document["data"]["result"]["next_commands"]
    assert f"--resume {run_id}" in resume and f"--reopen {run_id}" in reopen
    assert "--ingress=all" in gcloud and f"--region {REGION}" in gcloud
    resumed = cli(*shlex.split(resume.split(": ", 1)[1])[1:], "--yes", "--json")
    assert resumed.exit_code == 0, resumed.stdout
    assert world.run.service(SERVICE).ingress == INGRESS_ALL


def test_reopen_restores_the_ingress_saved_by_the_failed_run(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], relay: RelayProcess
) -> None:
    """`restore --reopen RUN_ID` puts back what that run saved, without importing."""
    world.run.service(SERVICE).ingress = 3  # internal-and-cloud-load-balancing before
    world.backups.fail_imports.append("boom")
    failed = cli("restore", export, *target_args, "--yes", "--json")
    assert failed.exit_code == 1
    reopen = json.loads(failed.stdout)["data"]["result"]["next_commands"][1]
    assert "--ingress=internal-and-cloud-load-balancing" in json.loads(failed.stdout)["notices"][-1]
    done = cli(*shlex.split(reopen.split(": ", 1)[1])[1:], "--yes")
    assert done.exit_code == 0, done.stdout
    assert world.run.service(SERVICE).ingress == 3
    assert len(world.server.calls("POST", r".*:importDocuments")) == 1


def test_count_mismatch_fails_validation_and_keeps_traffic_stopped(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], relay: RelayProcess
) -> None:
    """The import wrote fewer documents than the export's manifest says: validate fails."""
    bucket, prefix = export.removeprefix("gs://").split("/", 1)
    manifest = json.loads(world.storage.get(bucket, f"{prefix}/mlsgw/backup.json").data)  # type: ignore[union-attr]
    manifest["documents"] = 999
    world.storage.put(bucket, f"{prefix}/mlsgw/backup.json", json.dumps(manifest).encode())
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert "42 documents imported, the export holds 999" in document["summary"]
    assert world.run.service(SERVICE).ingress == INGRESS_INTERNAL


def short_import(world: GoogleStandIn, export: str) -> None:
    """The groups were deleted after the export, and the import writes back only one of its
    two (the total still matches: the export's files hold 41 events and 1 group)."""
    world.backups.database(PROJECT).collections["groups"] = 0  # type: ignore[union-attr]
    world.backups.exports[export] = {"events": 41, "groups": 1}


def test_a_collection_left_with_fewer_documents_than_the_export_fails_validation(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], relay: RelayProcess
) -> None:
    """The total matches but groups has 1 document where the export's manifest counted 2:
    validate fails naming the collection and both numbers; traffic stays stopped."""
    short_import(world, export)
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes", "--json")
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    steps = {s["name"]: s for s in document["steps"]}
    assert steps["validate counts"]["status"] == "ok"
    assert steps["collection counts"]["status"] == "critical"
    assert "groups: 1 documents after the import, the export holds 2" in document["summary"]
    assert "events" not in steps["collection counts"]["detail"]
    assert document["data"]["result"]["collection_counts"] == {"events": 55, "groups": 1}
    assert steps["reopen traffic"]["status"] == "skipped"
    assert world.run.service(SERVICE).ingress == INGRESS_INTERNAL


def test_collections_with_documents_written_since_the_export_pass_validation(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], relay: RelayProcess
) -> None:
    """An in-place import keeps what was written after the export: more documents in a
    collection (events 55 of 40) or a new collection is fine, and the step shows each."""
    world.backups.database(PROJECT).collections["reactions"] = 3  # type: ignore[union-attr]
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    (step,) = [s for s in document["steps"] if s["name"] == "collection counts"]
    assert step["status"] == "ok"
    assert step["detail"].startswith(
        "events 55 (export 40, 15 written since), groups 2 (as in the export), "
        "reactions 3 (not in the export)"
    )
    assert document["data"]["result"]["collection_counts"] == {
        "events": 55,
        "groups": 2,
        "reactions": 3,
    }


def test_a_manifest_without_collection_counts_is_reported_not_compared(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], relay: RelayProcess
) -> None:
    """A backup made before mlsgw recorded per-collection counts: the same short import
    passes (the total matches), and the step says the counts were not compared and why."""
    bucket, prefix = export.removeprefix("gs://").split("/", 1)
    manifest = json.loads(world.storage.get(bucket, f"{prefix}/mlsgw/backup.json").data)  # type: ignore[union-attr]
    del manifest["collection_counts"]
    world.storage.put(bucket, f"{prefix}/mlsgw/backup.json", json.dumps(manifest).encode())
    short_import(world, export)
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    (step,) = [s for s in document["steps"] if s["name"] == "collection counts"]
    assert step["status"] == "ok"
    assert step["detail"] == (
        "events 55, groups 1 (not compared: the manifest has no per-collection counts)"
    )


def test_dry_run_and_no_terminal_change_nothing(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], ledger_path: Path
) -> None:
    """--dry-run prints the plan (validated by Cloud Run) and changes nothing; without a TTY
    and --yes: exit 3 and nothing changes either."""
    lines_before = len(ledger_lines(ledger_path))
    dry = cli("restore", export, *target_args, "--dry-run")
    assert dry.exit_code == 0, dry.stdout
    assert "ingress: all → internal" in dry.stdout and "PLANNED" in dry.stdout
    assert len(ledger_lines(ledger_path)) == lines_before
    refused = cli("restore", export, *target_args)
    assert refused.exit_code == 3
    service = world.run.service(SERVICE)
    assert service.ingress == INGRESS_ALL and service.ingress_history == []
    assert world.server.calls("POST", r".*:importDocuments") == []
    assert world.backups.database(PROJECT).collections["events"] == 55  # type: ignore[union-attr]


def test_not_an_export_is_refused(cli: Cli, world: GoogleStandIn, target_args: list[str]) -> None:
    """A path without overall_export_metadata: exit 3, nothing changed."""
    result = cli("restore", f"gs://{BUCKET}/nothing-here", *target_args, "--yes")
    assert result.exit_code == 3
    assert "is not a Firestore export" in result.stdout
    assert world.run.service(SERVICE).ingress_history == []


def patches(google: GoogleStandIn) -> list[Json]:
    calls = google.server.calls("PATCH", r"/v2/.*/services/[^/]+")
    return [r.body for r in calls if r.query.get("validateOnly") != "true"]


def test_to_database_restores_a_managed_backup_then_switches_after_validation(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """Restore into a new database; a 0 % revision with the database id is validated on its
    tag URL; only then does traffic move to it. The old database is kept and named."""
    backup = world.backups.add_backup(PROJECT, age=timedelta(hours=3))
    world.run.public_urls[f"{SERVICE}/restored"] = relay.url
    result = cli("restore", backup, "--to-database", "restored-1", *target_args, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    assert world.backups.database(PROJECT, "restored-1") is not None
    assert world.backups.database(PROJECT) is not None  # the old one is kept
    deploy, switch = patches(world)
    env = deploy["template"]["containers"][0]["env"]
    assert {"name": "MLSGW_DATA__DATABASE", "value": "restored-1"} in env
    new = next(t for t in deploy["traffic"] if t.get("tag") == "restored")
    assert new.get("percent", 0) == 0 and sum(t.get("percent", 0) for t in deploy["traffic"]) == 100
    assert switch["traffic"] == [{"type": 1, "percent": 100}]  # LATEST, the new revision
    service = world.run.service(SERVICE)
    assert service.serving() == {f"{SERVICE}-restored-1": 100}
    document = json.loads(result.stdout)
    assert "(default) is kept" in document["summary"]
    counted = collection_counts(document)
    assert counted["status"] == "ok", counted
    assert counted["detail"] == "events 40, groups 2: 42 documents, as in the backup"
    assert document["data"]["result"]["collection_counts"] == {"events": 40, "groups": 2}
    assert document["data"]["result"]["expected_documents"] == 42
    order = [r.path for r in world.server.requests if r.method in ("POST", "PATCH")]
    restore_at = next(i for i, p in enumerate(order) if p.endswith("databases:restore"))
    first_patch = next(i for i, p in enumerate(order) if "/services/" in p)
    assert restore_at < first_patch


def test_to_database_with_failing_validation_never_moves_traffic(
    cli: Cli, world: GoogleStandIn, target_args: list[str]
) -> None:
    """The new revision does not answer a WebSocket REQ on its tag URL: exit 1, traffic as
    before, the new database named for inspection."""
    backup = world.backups.add_backup(PROJECT)
    before = world.run.service(SERVICE).serving()
    result = cli("restore", backup, "--to-database", "restored-2", *target_args, "--yes", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["summary"].startswith("validate revision failed")
    assert world.run.service(SERVICE).serving() == before
    assert len(patches(world)) == 1
    assert any("--database=restored-2" in n for n in document["notices"])
    assert any("mlsgw traffic --to-latest" in n for n in document["notices"])


def test_to_database_fails_validation_when_the_new_database_has_fewer_documents(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """The restored database holds 41 documents where the backup's metadata counts 42: exit
    1, both numbers named, no revision deployed, traffic as before, the new database kept
    for inspection."""
    backup = world.backups.add_backup(PROJECT)
    world.backups.alter_restores.append({"events": 39})
    world.run.public_urls[f"{SERVICE}/restored"] = relay.url
    before = world.run.service(SERVICE).serving()
    result = cli("restore", backup, "--to-database", "short-1", *target_args, "--yes", "--json")
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    assert document["summary"].startswith("validate database failed")
    assert "41 documents in the new database, the backup holds 42" in document["summary"]
    assert "short-1 is kept for inspection" in document["summary"]
    steps = {s["name"]: s["status"] for s in document["steps"]}
    assert steps["collection counts"] == "critical" and steps["deploy revision"] == "skipped"
    assert document["data"]["result"]["collection_counts"] == {"events": 39, "groups": 2}
    assert document["data"]["result"]["expected_documents"] == 42
    assert patches(world) == [] and world.run.service(SERVICE).serving() == before
    assert world.backups.database(PROJECT, "short-1") is not None
    assert any("--database=short-1" in n for n in document["notices"])


def test_to_database_reports_counts_not_compared_when_the_backup_has_no_count(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """A backup whose metadata has no document count: the counts are a warning saying they
    were not compared and why, and the restore goes on to switch."""
    backup = world.backups.add_backup(PROJECT)
    del world.backups.backups[backup]["stats"]
    world.run.public_urls[f"{SERVICE}/restored"] = relay.url
    result = cli("restore", backup, "--to-database", "nocount-1", *target_args, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    counted = collection_counts(document)
    assert counted["status"] == "warning"
    assert counted["detail"] == (
        "events 40, groups 2 (not compared: the backup's metadata gives no document count)"
    )
    assert document["data"]["result"]["expected_documents"] is None
    assert world.run.service(SERVICE).serving() == {f"{SERVICE}-nocount-1": 100}


def pitr_time() -> tuple[datetime, str]:
    at = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    return at, at.strftime("%Y-%m-%dT%H:%MZ")


def collection_counts(document: dict[str, Any]) -> dict[str, Any]:
    """The report's one "collection counts" step."""
    (counted,) = [s for s in document["steps"] if s["name"] == "collection counts"]
    assert isinstance(counted, dict)
    return counted


def restore_at(cli: Cli, target_args: list[str], database: str, stamp: str) -> Result:
    """``restore --to-database DATABASE --at STAMP --yes --json`` (the CLI's result)."""
    return cli("restore", "--to-database", database, "--at", stamp, *target_args, "--yes", "--json")


def test_to_database_at_a_pitr_time_clones_the_database(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """--at sends a PITR clone of the source database as of that whole minute, and each
    collection of the clone is compared with the source counted as of that time (the
    stand-in answers a read time with the current counts: the source does not change)."""
    world.run.public_urls[f"{SERVICE}/restored"] = relay.url
    at, stamp = pitr_time()
    result = restore_at(cli, target_args, "pitr-1", stamp)
    assert result.exit_code == 0, result.stdout
    [clone] = world.server.calls("POST", r"/v1/projects/[^/]+/databases:clone")
    assert clone.body["pitrSnapshot"]["database"] == DB
    sent = datetime.fromisoformat(clone.body["pitrSnapshot"]["snapshotTime"].replace("Z", "+00:00"))
    assert sent == at
    source_counts = world.server.calls("POST", rf"/v1/{re.escape(DB)}/documents:\w+")
    read_times = {json.loads(r.raw)["readTime"] for r in source_counts}
    assert read_times == {at.strftime("%Y-%m-%dT%H:%M:%SZ")}, read_times
    document = json.loads(result.stdout)
    counted = collection_counts(document)
    assert counted["status"] == "ok"
    assert counted["detail"] == "events 40, groups 2: as in the source at that time"
    assert document["data"]["result"]["expected_collection_counts"] == {"events": 40, "groups": 2}
    assert document["data"]["result"]["collection_counts"] == {"events": 40, "groups": 2}


def test_to_database_at_a_pitr_time_fails_when_a_collection_differs(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """The clone has one group fewer and a collection the source did not have at that time:
    exit 1, each named with both numbers, the one that matches not named, no switch."""
    world.backups.alter_restores.append({"groups": 1, "reactions": 3})
    world.run.public_urls[f"{SERVICE}/restored"] = relay.url
    before = world.run.service(SERVICE).serving()
    _, stamp = pitr_time()
    result = restore_at(cli, target_args, "pitr-4", stamp)
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    counted = collection_counts(document)
    assert counted["status"] == "critical"
    assert counted["detail"] == (
        "groups: 1 documents in the new database, the source held 2; "
        "reactions: 3 documents in the new database, the source held 0"
    )
    assert counted["detail"] in document["summary"]
    assert "pitr-4 is kept for inspection" in document["summary"]
    assert patches(world) == [] and world.run.service(SERVICE).serving() == before


def test_to_database_at_a_pitr_time_warns_when_the_source_cannot_be_counted(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """The source cannot be read as of --at: the counts are a warning, not compared, with
    the reason, and the restore goes on."""
    world.server.fail(
        "POST",
        rf"/v1/{re.escape(DB)}/documents:listCollectionIds",
        ApiError(400, "read_time is outside the version retention"),
    )
    world.run.public_urls[f"{SERVICE}/restored"] = relay.url
    _, stamp = pitr_time()
    result = restore_at(cli, target_args, "pitr-5", stamp)
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    counted = collection_counts(document)
    assert counted["status"] == "warning"
    assert counted["detail"].startswith(f"events 40, groups 2; not compared: {DB} could not be")
    assert "outside the version retention" in counted["detail"]
    assert document["data"]["result"]["expected_collection_counts"] is None


def test_to_database_refuses_pitr_when_it_is_off(
    cli: Cli, world: GoogleStandIn, target_args: list[str]
) -> None:
    """PITR off and a time older than an hour: exit 3 with the command that enables it."""
    world.backups.database(PROJECT).pitr = False  # type: ignore[union-attr]
    at = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%MZ")
    result = cli("restore", "--to-database", "pitr-2", "--at", at, *target_args, "--yes")
    assert result.exit_code == 3
    assert "--enable-pitr" in result.stdout
    assert world.server.calls("POST", r".*databases:clone") == []


def test_to_database_dry_run_and_no_terminal_change_nothing(
    cli: Cli, world: GoogleStandIn, target_args: list[str]
) -> None:
    """--dry-run validates the revision server-side and creates nothing; no TTY: exit 3."""
    backup = world.backups.add_backup(PROJECT)
    dry = cli("restore", backup, "--to-database", "restored-3", *target_args, "--dry-run")
    assert dry.exit_code == 0, dry.stdout
    refused = cli("restore", backup, "--to-database", "restored-3", *target_args)
    assert refused.exit_code == 3
    assert world.backups.database(PROJECT, "restored-3") is None
    assert world.server.calls("POST", r".*databases:restore") == []
    assert patches(world) == [] and len(world.run.service(SERVICE).revisions) == 2
    assert re.search(r"restored-3", dry.stdout)


def test_a_concurrent_service_change_is_reread_not_overwritten(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], relay: RelayProcess
) -> None:
    """Another operator labels the service just before traffic is stopped: the etag-guarded
    write is refused, the service read again, and their change kept."""
    world.run.concurrent_change(lambda record: record.labels.update(oncall="alice"))
    result = cli("restore", export, *target_args, "--validate-url", relay.url, "--yes")
    assert result.exit_code == 0, result.stdout
    service = world.run.service(SERVICE)
    assert service.labels == {"oncall": "alice"} and service.ingress_history == [2, 1]


def test_an_export_made_elsewhere_is_validated_against_its_export_operation(
    cli: Cli, world: GoogleStandIn, target_args: list[str], relay: RelayProcess
) -> None:
    """No mlsgw manifest (e.g. `gcloud firestore export`): the count comes from the export
    operation Firestore still lists, and is compared all the same."""
    target = Target(project=PROJECT, region=REGION, service=SERVICE, endpoint=world.url)
    snapshot = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    Cloud(target).firestore_backups().export_documents(
        DB, f"gs://{BUCKET}/manual/nightly", snapshot, lambda _: None
    )
    result = cli(
        "restore",
        f"gs://{BUCKET}/manual/nightly",
        *target_args,
        "--validate-url",
        relay.url,
        "--yes",
        "--json",
    )
    assert result.exit_code == 0, result.stdout
    counts = next(s for s in json.loads(result.stdout)["steps"] if s["name"] == "validate counts")
    assert counts["status"] == "ok" and "its export operation" in counts["detail"]
    per_collection = next(
        s for s in json.loads(result.stdout)["steps"] if s["name"] == "collection counts"
    )
    assert per_collection["detail"].endswith("(not compared: there is no mlsgw manifest)")


def test_an_unwritable_ledger_refuses_before_traffic_stops(
    cli: Cli, world: GoogleStandIn, export: str, target_args: list[str], tmp_path: Path
) -> None:
    """The ledger cannot be written: exit 3, the ingress untouched, nothing imported."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    ledger = str(blocker / "ledger.jsonl")
    result = cli("restore", export, *target_args, "--ledger", ledger, "--yes")
    assert result.exit_code == 3, result.stdout
    assert "ledger cannot be written" in result.stdout
    assert world.run.service(SERVICE).ingress_history == []
    assert world.server.calls("POST", r".*:importDocuments") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gs://b/x", "--to-database", "new-db"], "an export restores in place"),
        (["projects/p/locations/l/backups/b"], "add --to-database NEW_DB"),
        (["--to-database", "new-db", "--at", "yesterday"], "give a UTC time"),
        (["--reopen", "RUN", "gs://b/x"], "--reopen RUN_ID takes no PATH"),
        ([], "give the backup to restore"),
    ],
)
def test_contradictory_arguments_exit_3_before_anything_is_read(
    cli: Cli, google: GoogleStandIn, target_args: list[str], args: list[str], message: str
) -> None:
    """Usage errors name the fix and touch no API."""
    result = cli("restore", *args, *target_args, "--yes")
    assert result.exit_code == 3
    assert message in result.stderr
    assert google.server.requests == []


def test_pitr_time_must_be_a_whole_minute(
    cli: Cli, world: GoogleStandIn, target_args: list[str]
) -> None:
    """--at with seconds: exit 3, no clone."""
    at = (datetime.now(UTC) - timedelta(hours=1)).replace(second=30).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = cli("restore", "--to-database", "pitr-3", "--at", at, *target_args, "--yes")
    assert result.exit_code == 3
    assert "whole minutes" in result.stdout
    assert world.server.calls("POST", r".*databases:clone") == []
