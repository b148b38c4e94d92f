"""``mlsgw backup``, ``backup list``, ``backup schedule`` and the healthcheck RPO check,
end to end: the real CLI and Google clients against the stand-ins."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn

BUCKET = f"{PROJECT}-backups"
DB = f"projects/{PROJECT}/databases/(default)"


@pytest.fixture
def data(google: GoogleStandIn) -> GoogleStandIn:
    """A service with a secret and a plain MLSGW_ variable, a database, the default bucket."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    record.template["containers"][0]["env"] = [
        {"name": "MLSGW_METRICS__AUTH", "value": "metrics-secret"},
        {"name": "MLSGW_LIMITATION__MAX_LIMIT", "value": "321"},
        {"name": "DB_PASSWORD", "value": "hunter2"},
    ]
    google.backups.add_database(PROJECT, collections={"events": 40, "groups": 2})
    google.storage.add_bucket(BUCKET)
    return google


def export_name(age: timedelta) -> str:
    return (datetime.now(UTC) - age).strftime("%Y%m%dT%H%M%SZ")


def ledger_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_backup_exports_a_consistent_snapshot_to_the_default_bucket(
    cli: Cli, data: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """The export request carries a whole-minute snapshot_time and gs://<project>-backups/<UTC
    time>; the ledger records the export path and its document count."""
    before = datetime.now(UTC)
    result = cli("backup", *target_args, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    [sent] = data.server.calls("POST", re.escape(f"/v1/{DB}:exportDocuments"))
    prefix = sent.body["outputUriPrefix"]
    assert re.fullmatch(rf"gs://{BUCKET}/\d{{8}}T\d{{6}}Z", prefix)
    snapshot = datetime.fromisoformat(sent.body["snapshotTime"].replace("Z", "+00:00"))
    assert snapshot.second == 0 and snapshot.microsecond == 0
    assert before - timedelta(minutes=2) < snapshot < datetime.now(UTC)
    [line] = ledger_lines(ledger_path)
    assert line["command"] == "backup"
    assert line["result"]["export"] == prefix  # type: ignore[index]
    assert line["result"]["documents"] == 42  # type: ignore[index]


def test_backup_writes_redacted_service_and_relay_config_beside_the_export(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """service.json keeps plain values but not secrets; relay-config.json is the effective
    config with the service's MLSGW_* variables applied, secrets redacted; the manifest has
    the counts."""
    assert cli("backup", *target_args, "--yes").exit_code == 0
    names = sorted(data.storage.buckets[BUCKET])
    prefix = names[0].split("/", 1)[0]
    service = json.loads(data.storage.get(BUCKET, f"{prefix}/mlsgw/service.json").data)  # type: ignore[union-attr]
    env = {e["name"]: e["value"] for e in service["template"]["containers"][0]["env"]}
    assert env == {
        "MLSGW_METRICS__AUTH": "***",
        "MLSGW_LIMITATION__MAX_LIMIT": "321",
        "DB_PASSWORD": "***",
    }
    config_object = data.storage.get(BUCKET, f"{prefix}/mlsgw/relay-config.json")
    assert config_object is not None
    assert b"metrics-secret" not in config_object.data
    relay = json.loads(config_object.data)
    assert relay["limitation"]["max_limit"] == 321
    manifest = json.loads(data.storage.get(BUCKET, f"{prefix}/mlsgw/backup.json").data)  # type: ignore[union-attr]
    assert manifest["documents"] == 42 and manifest["export"] == f"gs://{BUCKET}/{prefix}"
    assert f"{prefix}/{prefix}.overall_export_metadata" in names


def test_bucket_flag_and_ops_setting_choose_the_bucket(
    cli: Cli, data: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """--bucket wins over [ops] backup_bucket, which wins over <project>-backups."""
    data.storage.add_bucket("ops-bucket")
    data.storage.add_bucket("flag-bucket")
    config = tmp_path / "ops.toml"
    config.write_text('[ops]\nbackup_bucket = "ops-bucket"\n')
    assert cli("backup", *target_args, "--config", str(config), "--yes").exit_code == 0
    assert data.storage.buckets["ops-bucket"] and not data.storage.buckets[BUCKET]
    flagged = cli(
        "backup", *target_args, "--config", str(config), "--bucket", "flag-bucket", "--yes"
    )
    assert flagged.exit_code == 0
    assert data.storage.buckets["flag-bucket"]


def test_dry_run_and_no_terminal_change_nothing(
    cli: Cli, data: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """--dry-run validates and writes nothing; without a TTY and --yes: exit 3, nothing."""
    dry = cli("backup", *target_args, "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["status"] == "planned"
    refused = cli("backup", *target_args)
    assert refused.exit_code == 3
    assert "no --yes" in refused.stdout
    assert data.server.calls("POST", r".*:exportDocuments") == []
    assert data.storage.buckets[BUCKET] == {}
    assert [line["result"]["outcome"] for line in ledger_lines(ledger_path)] == ["refused"]  # type: ignore[index]


def test_missing_bucket_is_refused_with_the_command_that_creates_it(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """A bucket that does not exist: exit 3 before any export, naming the fix."""
    result = cli("backup", *target_args, "--bucket", "nope", "--yes")
    assert result.exit_code == 3
    assert "gcloud storage buckets create gs://nope" in result.stdout
    assert data.server.calls("POST", r".*:exportDocuments") == []


def test_failed_export_is_exit_1_and_recorded(
    cli: Cli, data: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """The API refusing the export: exit 1, no side files, the failure in the ledger."""
    from tests.stand_ins.rest import ApiError

    data.server.fail("POST", r".*:exportDocuments", ApiError(503, "backend unavailable"))
    result = cli("backup", *target_args, "--yes")
    assert result.exit_code == 1
    assert "SKIPPED side files" in result.stdout
    assert data.storage.buckets[BUCKET] == {}
    assert ledger_lines(ledger_path)[-1]["result"]["outcome"] == "failed"  # type: ignore[index]


def test_backup_list_shows_exports_and_managed_backups_newest_first(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """--json: kind, location, age and document count of each backup, newest first."""
    assert cli("backup", *target_args, "--yes").exit_code == 0
    data.backups.add_export(BUCKET, export_name(timedelta(days=2)), {"events": 7})
    managed = data.backups.add_backup(PROJECT, age=timedelta(hours=5))
    result = cli("backup", "list", *target_args, "--json")
    assert result.exit_code == 0, result.stdout
    backups = json.loads(result.stdout)["data"]["backups"]
    assert [b["kind"] for b in backups] == ["export", "managed", "export"]
    assert backups[0]["documents"] == 42 and backups[0]["age_seconds"] < 120
    assert backups[1]["location"] == managed and backups[1]["documents"] == 42
    assert backups[1]["age"] == "5 h 0 min"
    assert backups[2]["documents"] is None and backups[2]["age"].startswith("2 d")
    assert all(b["size_bytes"] > 0 for b in backups)


def test_healthcheck_warns_when_the_newest_backup_is_older_than_the_rpo(
    cli: Cli, data: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """30 h old with the default RPO of 24 h: warning; a fresh backup clears it; with
    [ops] rpo_hours = 48 the old one was fine."""
    data.backups.add_export(BUCKET, export_name(timedelta(hours=30)), {"events": 3})

    def backups_check(*extra: str) -> dict[str, object]:
        result = cli("healthcheck", *target_args, "--json", *extra)
        checks = json.loads(result.stdout)["findings"]
        found: dict[str, object] = next(c for c in checks if c["name"] == "backups")
        return found

    stale = backups_check()
    assert stale["status"] == "warning" and "older than the RPO of 24 h" in str(stale["summary"])
    config = tmp_path / "rpo.toml"
    config.write_text("[ops]\nrpo_hours = 48\n")
    assert backups_check("--config", str(config))["status"] == "ok"
    assert cli("backup", *target_args, "--yes").exit_code == 0
    fresh = backups_check()
    assert fresh["status"] == "ok" and "0 min old" in str(fresh["summary"])


def test_list_says_no_backups_are_set_up_when_there_is_no_bucket_and_none_was_named(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """No default bucket, no managed backup, no --bucket: an empty list (exit 0) that says how
    to start backups; a --bucket that does not exist is still a failure (exit 1)."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("backup", "list", *target_args, "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["data"]["backups"] == [] and document["data"]["problems"] == []
    assert "no backups are set up" in document["notices"][0]
    named = cli("backup", "list", *target_args, "--bucket", "nope", "--json")
    assert (
        named.exit_code == 1 and "gs://nope does not exist" in json.loads(named.stdout)["summary"]
    )


def test_schedule_is_created_then_left_alone_then_updated(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """Create a daily schedule; the same request again writes nothing; a new retention updates
    the same schedule."""
    first = cli("backup", "schedule", *target_args, "--retention-days", "7", "--yes", "--json")
    assert first.exit_code == 0, first.stdout
    [schedule] = data.backups.schedules[DB]
    assert schedule["retention"] == "604800s" and "dailyRecurrence" in schedule
    again = cli("backup", "schedule", *target_args, "--retention-days", "7", "--yes", "--json")
    assert again.exit_code == 0 and "nothing to change" in json.loads(again.stdout)["summary"]
    assert len(data.server.calls("POST", r".*/backupSchedules")) == 1
    assert data.server.calls("PATCH", r".*/backupSchedules/.*") == []
    longer = cli("backup", "schedule", *target_args, "--retention-days", "30", "--yes")
    assert longer.exit_code == 0
    assert [s["retention"] for s in data.backups.schedules[DB]] == ["2592000s"]


def test_schedule_dry_run_and_no_terminal_write_nothing(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """--dry-run: planned, no schedule; no TTY and no --yes: exit 3, no schedule."""
    assert cli("backup", "schedule", *target_args, "--dry-run").exit_code == 0
    assert cli("backup", "schedule", *target_args).exit_code == 3
    assert data.backups.schedules.get(DB, []) == []


def test_healthcheck_reads_the_bucket_given_with_bucket_and_counts_managed_backups(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """--bucket points the check at another bucket; a fresh managed backup also meets the RPO;
    a missing bucket with no managed backup is a warning that names the bucket."""

    def backups_check(*extra: str) -> dict[str, object]:
        result = cli("healthcheck", *target_args, "--json", *extra)
        found: dict[str, object] = next(
            c for c in json.loads(result.stdout)["findings"] if c["name"] == "backups"
        )
        return found

    missing = backups_check("--bucket", "nope")
    assert missing["status"] == "warning" and "gs://nope does not exist" in str(missing["details"])
    data.storage.add_bucket("other")
    data.backups.add_export("other", export_name(timedelta(hours=1)), {"events": 1})
    assert backups_check("--bucket", "other")["status"] == "ok"
    data.backups.add_backup(PROJECT, age=timedelta(hours=2))
    managed = backups_check("--bucket", "nope")
    assert managed["status"] == "ok" and "managed" in str(managed["summary"])


def test_backup_without_a_service_writes_only_the_manifest(cli: Cli, data: GoogleStandIn) -> None:
    """Project only (no Cloud Run service configured): the export and its manifest, and the
    report says the service and relay config were not saved."""
    result = cli("backup", "--project", PROJECT, "--endpoint", data.url, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    names = sorted(n for n in data.storage.buckets[BUCKET] if "/mlsgw/" in n)
    assert [n.rsplit("/", 1)[-1] for n in names] == ["backup.json"]
    side = next(s for s in json.loads(result.stdout)["steps"] if s["name"] == "side files")
    assert "no Cloud Run service configured" in side["detail"]


def test_backup_records_each_collections_documents_at_the_snapshot_in_its_manifest(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """The manifest has the documents of each top-level collection, counted with COUNT
    aggregations read at the export's snapshot time (not now)."""
    result = cli("backup", *target_args, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    [sent] = data.server.calls("POST", re.escape(f"/v1/{DB}:exportDocuments"))
    prefix = sent.body["outputUriPrefix"].removeprefix(f"gs://{BUCKET}/")
    manifest = json.loads(data.storage.get(BUCKET, f"{prefix}/mlsgw/backup.json").data)  # type: ignore[union-attr]
    assert manifest["collection_counts"] == {"events": 40, "groups": 2}
    docs = re.escape(f"/v1/{DB}/documents")
    counted = data.server.calls("POST", docs + ":runAggregationQuery")
    listed = data.server.calls("POST", docs + ":listCollectionIds")
    read_times = [json.loads(c.raw)["readTime"] for c in counted] + [
        c.body["readTime"] for c in listed
    ]
    snapshot = datetime.fromisoformat(sent.body["snapshotTime"].replace("Z", "+00:00"))
    assert len(read_times) == 3
    assert {datetime.fromisoformat(t.replace("Z", "+00:00")) for t in read_times} == {snapshot}
    step = next(s for s in json.loads(result.stdout)["steps"] if s["name"] == "collection counts")
    assert step["status"] == "ok" and step["detail"].startswith("events 40, groups 2")


def test_backup_whose_collections_cannot_be_counted_succeeds_and_records_them_as_unknown(
    cli: Cli, data: GoogleStandIn, target_args: list[str]
) -> None:
    """A COUNT refused: the backup is still done (exit 0); the step warns and the manifest
    records the per-collection counts as null (unknown)."""
    from tests.stand_ins.rest import ApiError

    data.server.fail(
        "POST", r".*:runAggregationQuery", ApiError(403, "Missing datastore.entities.list")
    )
    result = cli("backup", *target_args, "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    step = next(s for s in document["steps"] if s["name"] == "collection counts")
    assert step["status"] == "warning" and "unknown" in step["detail"]
    prefix = document["data"]["result"]["export"].removeprefix(f"gs://{BUCKET}/")
    manifest = json.loads(data.storage.get(BUCKET, f"{prefix}/mlsgw/backup.json").data)  # type: ignore[union-attr]
    assert manifest["collection_counts"] is None and manifest["documents"] == 42
