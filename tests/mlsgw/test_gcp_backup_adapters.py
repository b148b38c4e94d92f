"""The backup adapters drive the real Firestore Admin and Cloud Storage clients against the
stand-ins: exports, imports, managed backups, schedules, restores, clones, object listing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mlsgw import errors
from mlsgw.gcp.backup_api import OperationStatus
from mlsgw.gcp.clients import Cloud
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.rest import permission_denied

DB = f"projects/{PROJECT}/databases/(default)"


def cloud_for(google: GoogleStandIn) -> Cloud:
    return Cloud(
        Target(project=PROJECT, region=REGION, service=SERVICE, endpoint=google.url, timeout=5)
    )


def minute_ago() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def test_export_sends_snapshot_time_and_reports_progress_until_done(
    google: GoogleStandIn,
) -> None:
    """The request carries the prefix and a whole-minute snapshot; progress is read per poll."""
    google.backups.add_database(PROJECT, collections={"events": 40, "groups": 2})
    google.storage.add_bucket("b")
    google.backups.polls_until_done = 2
    seen: list[OperationStatus] = []
    snapshot = minute_ago()
    result = (
        cloud_for(google)
        .firestore_backups()
        .export_documents(DB, "gs://b/20261201T060000Z", snapshot, seen.append)
    )
    sent = google.server.calls("POST", re.escape(f"/v1/{DB}:exportDocuments"))[0].body
    assert sent["outputUriPrefix"] == "gs://b/20261201T060000Z"
    assert datetime.fromisoformat(sent["snapshotTime"].replace("Z", "+00:00")) == snapshot
    assert seen[0].state == "PROCESSING" and seen[0].progress.documents_estimated == 42
    assert result.operation.succeeded and result.operation.progress.documents == 42
    assert result.snapshot_time == snapshot
    assert result.output_uri_prefix == "gs://b/20261201T060000Z"
    names = [o.name for o in cloud_for(google).objects().list_objects("b", "20261201T060000Z/")]
    assert "20261201T060000Z/20261201T060000Z.overall_export_metadata" in names


def test_export_to_a_missing_bucket_is_refused_by_the_api(google: GoogleStandIn) -> None:
    """INVALID_ARGUMENT from the API is translated at the edge."""
    google.backups.add_database(PROJECT)
    with pytest.raises(errors.CloudError, match="Bucket nope does not exist"):
        cloud_for(google).firestore_backups().export_documents(
            DB, "gs://nope/x", minute_ago(), lambda _: None
        )


def test_failed_import_operation_is_operation_failed(google: GoogleStandIn) -> None:
    """An import whose operation ends with an error raises OperationFailed with the message."""
    google.backups.add_database(PROJECT, collections={"events": 3})
    google.storage.add_bucket("b")
    google.backups.add_export("b", "old", {"events": 5})
    google.backups.fail_imports.append("bucket read failed")
    with pytest.raises(errors.OperationFailed, match="bucket read failed"):
        cloud_for(google).firestore_backups().import_documents(DB, "gs://b/old", lambda _: None)
    assert google.backups.database(PROJECT) is not None
    assert google.backups.database(PROJECT).collections == {"events": 3}  # type: ignore[union-attr]


def test_import_replaces_the_exported_collections(google: GoogleStandIn) -> None:
    """A successful import reports the documents it wrote."""
    google.backups.add_database(PROJECT, collections={"events": 3, "later": 1})
    google.storage.add_bucket("b")
    google.backups.add_export("b", "old", {"events": 5})
    api = cloud_for(google).firestore_backups()
    status = api.import_documents(DB, "gs://b/old", lambda _: None)
    assert status.succeeded and status.progress.documents == 5
    assert google.backups.database(PROJECT).collections == {"events": 5, "later": 1}  # type: ignore[union-attr]


def test_managed_backups_schedules_and_database_are_read(google: GoogleStandIn) -> None:
    """Backups across locations with stats; schedule create then update; PITR state."""
    google.backups.add_database(PROJECT, collections={"events": 10}, pitr=True)
    name = google.backups.add_backup(PROJECT, age=timedelta(hours=5))
    api = cloud_for(google).firestore_backups()
    [backup] = api.list_backups(PROJECT)
    assert backup.name == name and backup.document_count == 10 and backup.state == "READY"
    assert google.server.calls("GET", f"/v1/projects/{PROJECT}/locations/-/backups")
    created = api.create_backup_schedule(DB, timedelta(days=7))
    assert created.retention == timedelta(days=7) and created.recurrence == "daily"
    updated = api.update_backup_schedule(created.name, timedelta(days=14))
    assert [s.retention for s in api.list_backup_schedules(DB)] == [timedelta(days=14)]
    assert updated.name == created.name
    info = api.get_database(DB)
    assert info.pitr_enabled and info.version_retention == timedelta(days=7)


def test_restore_and_clone_create_new_databases(google: GoogleStandIn) -> None:
    """Restore from a backup and PITR clone both wait for the LRO and return the database."""
    google.backups.add_database(PROJECT, collections={"events": 10}, pitr=True)
    backup = google.backups.add_backup(PROJECT)
    api = cloud_for(google).firestore_backups()
    restored = api.restore_database(PROJECT, "restored-1", backup, lambda _: None)
    assert restored.name == f"projects/{PROJECT}/databases/restored-1"
    cloned = api.clone_database(PROJECT, "cloned-1", DB, minute_ago(), lambda _: None)
    assert cloned.name.endswith("/cloned-1")
    with pytest.raises(errors.Conflict):
        api.restore_database(PROJECT, "restored-1", backup, lambda _: None)


def test_delete_database_waits_until_the_database_is_gone(google: GoogleStandIn) -> None:
    """The delete operation (with its empty metadata) is followed to the end; deleting a
    database that does not exist is NotFound."""
    google.backups.add_database(PROJECT, "scratch-1", collections={"events": 3})
    google.backups.polls_until_done = 2
    api = cloud_for(google).firestore_backups()
    name = f"projects/{PROJECT}/databases/scratch-1"
    api.delete_database(name)
    assert google.backups.database(PROJECT, "scratch-1") is None
    assert len(google.server.calls("DELETE", re.escape(f"/v1/{name}"))) == 1
    with pytest.raises(errors.NotFound, match="scratch-1"):
        api.delete_database(name)


def test_delete_database_without_permission_names_it(google: GoogleStandIn) -> None:
    """A refused delete is PermissionDenied naming the missing permission; nothing is gone."""
    google.backups.add_database(PROJECT, "scratch-2")
    name = f"projects/{PROJECT}/databases/scratch-2"
    google.server.fail(
        "DELETE", re.escape(f"/v1/{name}"), permission_denied("datastore.databases.delete", name)
    )
    with pytest.raises(errors.PermissionDenied) as caught:
        cloud_for(google).firestore_backups().delete_database(name)
    assert caught.value.permission == "datastore.databases.delete"
    assert google.backups.database(PROJECT, "scratch-2") is not None


def test_export_operation_is_found_by_its_output_prefix(google: GoogleStandIn) -> None:
    """The listed export operation that wrote a prefix gives its document count."""
    google.backups.add_database(PROJECT, collections={"events": 7})
    google.storage.add_bucket("b")
    api = cloud_for(google).firestore_backups()
    api.export_documents(DB, "gs://b/one", minute_ago(), lambda _: None)
    found = api.export_operation(DB, "gs://b/one/")
    assert found is not None and found.succeeded and found.progress.documents == 7
    assert api.export_operation(DB, "gs://b/other") is None


def test_ingress_is_read_and_written_without_a_new_revision(google: GoogleStandIn) -> None:
    """ServiceChange(ingress=…) goes on the wire as the enum and creates no revision."""
    from mlsgw.gcp.base import ServiceChange

    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    name = f"projects/{PROJECT}/locations/{REGION}/services/{SERVICE}"
    run = cloud_for(google).run()
    before = run.get_service(name)
    assert before.ingress == "all"
    after = run.update_service(name, ServiceChange(ingress="internal"), etag=before.etag)
    assert after.ingress == "internal" and google.run.service(SERVICE).ingress == 2
    assert len(google.run.service(SERVICE).revisions) == 1
    assert run.describe_service(name)["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
