"""The in-place restore procedure (R-K5) as data: its steps, its plan lines, the count
validation, and the exact commands that continue it or reopen traffic after a failure."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from mlsgw.backups.inventory import format_age
from mlsgw.report import Change, Status, Step
from mlsgw.target import Target

STOP, IMPORT, VALIDATE, REOPEN, HEALTHCHECK = (
    "stop traffic",
    "import",
    "validate",
    "reopen traffic",
    "healthcheck",
)
STEPS = (STOP, IMPORT, VALIDATE, REOPEN, HEALTHCHECK)
"""In order. Traffic is reopened only after every step before it succeeded."""
STOPPED_INGRESS = "internal"


@dataclass(frozen=True)
class RestoreSource:
    """The export to restore and what is known about it."""

    uri: str
    taken: datetime | None
    documents: int | None
    """Documents the export holds, from its manifest or its export operation."""
    counted_by: str
    """Where :attr:`documents` came from (for the report)."""
    collections: Mapping[str, int] | None = None
    """Documents per top-level collection at the export's snapshot, from mlsgw's manifest;
    ``None`` when not recorded (older backups, exports not made by mlsgw)."""

    def describe(self, now: datetime) -> str:
        """``gs://b/p (taken 2026-12-01 06:00 UTC, 5 h 3 min ago)``."""
        if self.taken is None:
            return f"{self.uri} (age unknown)"
        age = format_age(now - self.taken)
        return f"{self.uri} (taken {self.taken:%Y-%m-%d %H:%M} UTC, {age} ago)"


@dataclass(frozen=True)
class RestorePlan:
    """Everything decided before the first change."""

    source: RestoreSource
    database: str
    service_name: str
    saved_ingress: str
    """The ingress to restore at the end: read now, or saved by the run being resumed."""
    validate_url: str | None
    resumed_from: str | None = None

    def changes(self) -> tuple[Change, ...]:
        """The plan lines, one per step."""
        where = self.validate_url or "(no internal or tagged URL: skipped)"
        return (
            Change(self.service_name, "ingress", self.saved_ingress, STOPPED_INGRESS),
            Change(self.database, "import", "", self.source.uri),
            Change(
                self.database,
                "validate",
                "",
                f"document counts, /health and REQ at {where}",
            ),
            Change(self.service_name, "ingress", STOPPED_INGRESS, self.saved_ingress),
            Change(self.service_name, "healthcheck", "", "service Ready, /health, WebSocket REQ"),
        )


def count_step(expected: int | None, imported: int, counted_by: str) -> Step:
    """The document-count part of validation: the import must have written what the export
    holds; with no recorded count it is a warning, not a pass."""
    if expected is None:
        return Step(
            "validate counts",
            Status.WARNING,
            f"{imported} documents imported; the export's count is unknown (no manifest and "
            "no export operation listed), so it could not be compared",
        )
    if imported != expected:
        return Step(
            "validate counts",
            Status.CRITICAL,
            f"{imported} documents imported, the export holds {expected} ({counted_by})",
        )
    return Step(
        "validate counts", Status.OK, f"{imported} documents, as in the export ({counted_by})"
    )


def compare_collections(
    expected: Mapping[str, int], counted: Mapping[str, int], step: str, counted_by: str
) -> Step:
    """The per-collection part of validation after an in-place import: each collection of
    the export must hold at least its documents at the snapshot (an import keeps documents
    written since, so more is fine); fewer in any is CRITICAL, naming it and both numbers."""
    short = [
        f"{name}: {counted.get(name, 0)} documents after the import, the export holds {n}"
        for name, n in sorted(expected.items())
        if counted.get(name, 0) < n
    ]
    if short:
        return Step(step, Status.CRITICAL, "; ".join(short) + f" ({counted_by})")
    lines = []
    for name in sorted({*expected, *counted}):
        now, then = counted.get(name, 0), expected.get(name)
        if then is None:
            lines.append(f"{name} {now} (not in the export)")
        elif now == then:
            lines.append(f"{name} {now} (as in the export)")
        else:
            lines.append(f"{name} {now} (export {then}, {now - then} written since)")
    listed = ", ".join(lines) or "no collections, none in the export"
    return Step(step, Status.OK, f"{listed}; none has fewer than the export ({counted_by})")


def _target_flags(target: Target) -> list[str]:
    flags = []
    for name in ("project", "region", "service", "endpoint", "ledger"):
        value = getattr(target, name)
        if value:
            flags += [f"--{name}", str(value)]
    return flags


def next_commands(
    plan: RestorePlan, target: Target, run_id: str, failed: str, *, validate_flags: list[str]
) -> list[str]:
    """After ``failed`` went wrong (traffic stays stopped): the commands that continue the
    restore and the ones that reopen traffic without it, ready to paste."""
    flags = _target_flags(target)
    resume = ["mlsgw", "restore", plan.source.uri, "--resume", run_id, *flags, *validate_flags]
    reopen = ["mlsgw", "restore", "--reopen", run_id, *flags]
    project = ["--project", target.project] if target.project else []
    region = ["--region", target.region] if target.region else []
    gcloud = [
        "gcloud",
        "run",
        "services",
        "update",
        str(target.service),
        *region,
        *project,
        f"--ingress={plan.saved_ingress}",
    ]
    lines = []
    if failed in (STOP, IMPORT, VALIDATE):
        why = "import again and validate" if failed != VALIDATE else "import again, validate"
        lines.append(f"continue the restore ({why}, then reopen): {shlex.join(resume)}")
    lines.append(f"reopen traffic without restoring: {shlex.join(reopen)}")
    lines.append(f"or with gcloud: {shlex.join(gcloud)}")
    return lines
