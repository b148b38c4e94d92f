"""The backup resources through the engine's guarded write, against the stand-ins."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlsgw.errors import Refused
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.output import SpinnerReporter, stderr_console
from mlsgw.resources.backup_schedule import BackupScheduleResource, ScheduleChange
from mlsgw.resources.base import Mutation
from mlsgw.resources.firestore_export import ExportRequest, FirestoreExport
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import write
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT
from tests.stand_ins.google import GoogleStandIn

DB = f"projects/{PROJECT}/databases/(default)"


def context(google: GoogleStandIn, tmp_path: Path) -> RunContext:
    target = Target(project=PROJECT, endpoint=google.url, timeout=5)
    cloud = Cloud(target)
    return RunContext(
        command="test",
        target=target,
        cloud=cloud,
        ledger=Ledger.at(str(tmp_path / "ledger.jsonl"), os.environ, cloud),
        reporter=SpinnerReporter(stderr_console(), None),
        run_id="run",
        confirm=lambda _: None,
    )


def test_a_schedule_created_concurrently_is_updated_not_duplicated(
    google: GoogleStandIn, tmp_path: Path
) -> None:
    """Read with no schedule; another operator creates one; the create is refused (409),
    the engine reads again and updates that schedule instead."""
    google.backups.add_database(PROJECT)
    ctx = context(google, tmp_path)
    resource = BackupScheduleResource(ctx.cloud.firestore_backups(), DB)
    state = resource.read()
    assert state.daily is None
    ctx.cloud.firestore_backups().create_backup_schedule(DB, timedelta(days=3))
    mutation = Mutation(
        "write schedule",
        resource,
        lambda s: ScheduleChange(timedelta(days=7)),
        lambda s, c: (),
    )
    after, conflicts = write(ctx, mutation, state, ScheduleChange(timedelta(days=7)))
    assert conflicts == 1
    assert after.daily is not None and after.daily.retention == timedelta(days=7)
    assert [s["retention"] for s in google.backups.schedules[DB]] == ["604800s"]


def test_export_resource_refuses_a_missing_bucket_and_a_used_prefix(
    google: GoogleStandIn, tmp_path: Path
) -> None:
    """Reading names the command that creates the bucket; validating refuses a prefix that
    already holds objects and a snapshot older than the database keeps."""
    google.backups.add_database(PROJECT)
    ctx = context(google, tmp_path)
    api, objects = ctx.cloud.firestore_backups(), ctx.cloud.objects()
    with pytest.raises(Refused, match="gcloud storage buckets create gs://nope"):
        FirestoreExport(api, objects, DB, "nope", "x", lambda _: None).read()
    google.storage.add_bucket("b")
    google.storage.put("b", "used/file", b"x")
    used = FirestoreExport(api, objects, DB, "b", "used", lambda _: None)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    with pytest.raises(Refused, match="already holds 1 object"):
        used.validate(used.read(), ExportRequest(minute))
    fresh = FirestoreExport(api, objects, DB, "b", "fresh", lambda _: None)
    with pytest.raises(Refused, match="earliest version"):
        fresh.validate(fresh.read(), ExportRequest(minute - timedelta(hours=2)))
    assert "is free" in fresh.validate(fresh.read(), ExportRequest(minute))
