"""Backup naming: bucket precedence, export folder names, whole-minute snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlsgw.backups.naming import (
    backup_bucket,
    export_name,
    export_time,
    overall_metadata,
    snapshot_time,
    split_gs,
)
from mlsgw.errors import UsageError


def test_bucket_flag_beats_ops_setting_beats_project_convention() -> None:
    """--bucket, else [ops] backup_bucket, else <project>-backups; gs:// is accepted."""
    assert backup_bucket("p", "gs://flag/", "ops") == "flag"
    assert backup_bucket("p", None, "ops") == "ops"
    assert backup_bucket("p", None, None) == "p-backups"


def test_export_name_is_the_utc_time_and_parses_back() -> None:
    """The folder name is the UTC start time; other names are not exports of ours."""
    moment = datetime(2026, 12, 1, 6, 30, 5, tzinfo=UTC)
    assert export_name(moment) == "20261201T063005Z"
    assert export_time("20261201T063005Z") == moment
    assert export_time("nightly") is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 1, 6, 30, 5, tzinfo=UTC), datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
        (datetime(2026, 12, 1, 6, 30, 0, tzinfo=UTC), datetime(2026, 12, 1, 6, 29, tzinfo=UTC)),
    ],
)
def test_snapshot_is_the_last_whole_minute_strictly_in_the_past(
    now: datetime, expected: datetime
) -> None:
    """Firestore takes only whole minutes in the past."""
    assert snapshot_time(now) == expected
    assert snapshot_time(now) < now and now - snapshot_time(now) <= timedelta(minutes=1)


def test_gs_paths_split_and_bad_ones_are_usage_errors() -> None:
    """gs://bucket/prefix splits; a missing prefix or scheme is a usage error."""
    assert split_gs("gs://b/a/20261201T000000Z/") == ("b", "a/20261201T000000Z")
    for bad in ("b/x", "gs://b", "gs:///x"):
        with pytest.raises(UsageError):
            split_gs(bad)
    assert overall_metadata("a/x") == "a/x/x.overall_export_metadata"
