"""How a restore drill is judged (pure): counts compared, restore time against the runbook's
RTO, backup age against its RPO."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from mlsgw.report import CheckResult, Perf, Status

RTO = timedelta(hours=2)
"""Recovery time objective: a restore must finish within 2 h."""
RPO = timedelta(hours=24)
"""The runbook's recovery point objective (``[ops] rpo_hours`` overrides it): at most 24 h of
data may be lost, so a backup is at most 24 h old."""


@dataclass(frozen=True)
class DrillOutcome:
    """What the drill measured."""

    backup: str
    backup_age: timedelta
    restore_time: timedelta
    expected: Mapping[str, int] | None
    """Documents the backup says it holds, under the names ``restored`` uses; ``None`` when
    the backup gives no count (the counts are then not compared)."""
    restored: Mapping[str, int]
    """Documents found in the scratch database."""
    scratch_deleted: bool
    cleanup_error: str = ""
    rpo: timedelta = RPO
    """The recovery point objective the backup's age is judged against."""


def _hours(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def judge(outcome: DrillOutcome) -> CheckResult:
    """Critical when counts differ, the restore took longer than the RTO or the scratch
    database could not be deleted; a warning when the backup is older than the RPO or gives
    no count to compare with."""
    problems: list[tuple[Status, str]] = []
    expected, restored = outcome.expected, outcome.restored
    if expected is None:
        problems.append(
            (Status.WARNING, "the backup gives no document count: the counts were not compared")
        )
    differing = (
        {
            name: (expected.get(name, 0), restored.get(name, 0))
            for name in sorted(set(expected) | set(restored))
            if expected.get(name, 0) != restored.get(name, 0)
        }
        if expected is not None
        else {}
    )
    if differing:
        text = ", ".join(f"{n} {want} → {got}" for n, (want, got) in differing.items())
        problems.append((Status.CRITICAL, f"counts differ: {text}"))
    if outcome.restore_time > RTO:
        problems.append(
            (Status.CRITICAL, f"restore took {_hours(outcome.restore_time)}, over the 2 h RTO")
        )
    rpo = f"{outcome.rpo.total_seconds() / 3600:g} h"
    if outcome.backup_age > outcome.rpo:
        problems.append(
            (
                Status.WARNING,
                f"the newest backup is {_hours(outcome.backup_age)} old, over the {rpo} RPO",
            )
        )
    if not outcome.scratch_deleted:
        problems.append(
            (Status.CRITICAL, f"the scratch database was NOT deleted: {outcome.cleanup_error}")
        )
    total = sum(outcome.restored.values())
    figures = (
        f"{total} documents restored from {outcome.backup} in {_hours(outcome.restore_time)} "
        f"(RTO 2 h), backup {_hours(outcome.backup_age)} old (RPO {rpo})"
    )
    status = Status.OK
    if any(s is Status.CRITICAL for s, _ in problems):
        status = Status.CRITICAL
    elif problems:
        status = Status.WARNING
    summary = "; ".join(text for _, text in problems)
    return CheckResult(
        "restore_drill",
        status,
        f"{summary} — {figures}" if summary else figures,
        perf=(
            Perf(
                "restore_time",
                round(outcome.restore_time.total_seconds(), 1),
                "s",
                crit=RTO.total_seconds(),
            ),
            Perf(
                "backup_age",
                round(outcome.backup_age.total_seconds()),
                "s",
                warn=outcome.rpo.total_seconds(),
            ),
        ),
        data={
            "backup": outcome.backup,
            "backup_age_s": outcome.backup_age.total_seconds(),
            "restore_time_s": outcome.restore_time.total_seconds(),
            "rto_s": RTO.total_seconds(),
            "rpo_s": outcome.rpo.total_seconds(),
            "expected": None if outcome.expected is None else dict(outcome.expected),
            "restored": dict(outcome.restored),
            "scratch_deleted": outcome.scratch_deleted,
        },
    )
