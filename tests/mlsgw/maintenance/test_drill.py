"""Judging a restore drill (pure): counts, RTO 2 h, RPO 24 h, the scratch database's fate."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from mlsgw.maintenance.drill import DrillOutcome, judge
from mlsgw.report import Status

COUNTS = {"events": 120, "groups": 3}


def outcome(**changes: object) -> DrillOutcome:
    base: dict[str, object] = {
        "backup": "gs://b/20261201T020000Z",
        "backup_age": timedelta(hours=5),
        "restore_time": timedelta(minutes=12),
        "expected": COUNTS,
        "restored": COUNTS,
        "scratch_deleted": True,
    }
    base.update(changes)
    return DrillOutcome(**base)  # type: ignore[arg-type]


def test_a_clean_drill_reports_time_against_rto_and_age_against_rpo() -> None:
    result = judge(outcome())
    assert result.status is Status.OK
    assert result.summary == (
        "123 documents restored from gs://b/20261201T020000Z in 12 min (RTO 2 h), "
        "backup 5.0 h old (RPO 24 h)"
    )


def test_differing_counts_are_critical_and_name_the_collection() -> None:
    result = judge(outcome(restored={"events": 119, "groups": 3}))
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("counts differ: events 120 → 119")


def test_a_restore_over_the_rto_is_critical_and_an_old_backup_a_warning() -> None:
    assert judge(outcome(restore_time=timedelta(hours=3))).status is Status.CRITICAL
    old = judge(outcome(backup_age=timedelta(hours=30)))
    assert old.status is Status.WARNING
    assert "30.0 h old, over the 24 h RPO" in old.summary


def test_a_scratch_database_left_behind_is_critical() -> None:
    result = judge(outcome(scratch_deleted=False, cleanup_error="permission denied"))
    assert result.status is Status.CRITICAL
    assert "NOT deleted: permission denied" in result.summary


def test_a_backup_without_a_count_is_a_warning_and_nothing_is_compared() -> None:
    result = judge(outcome(expected=None, restored={"events": 7}))
    assert result.status is Status.WARNING
    assert result.summary.startswith("the backup gives no document count")
    assert "counts differ" not in result.summary
    assert result.data["expected"] is None


def test_the_backup_age_is_judged_against_the_configured_rpo() -> None:
    outcome = DrillOutcome(
        backup="b",
        backup_age=timedelta(hours=30),
        restore_time=timedelta(minutes=3),
        expected={"total": 5},
        restored={"total": 5},
        scratch_deleted=True,
        rpo=timedelta(hours=48),
    )
    assert judge(outcome).status is Status.OK
    tighter = judge(replace(outcome, rpo=timedelta(hours=12)))
    assert tighter.status is Status.WARNING
    assert "over the 12 h RPO" in tighter.summary
