"""The checks every backup and restore action makes before its first change."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mlsgw.errors import LedgerError
from mlsgw.report import ActionReport, Outcome
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import record


def unwritable_ledger(ctx: RunContext) -> str | None:
    """Why nothing may change because the ledger cannot be written, else ``None``."""
    try:
        ctx.ledger.check_writable()
    except LedgerError as exc:
        return f"the ledger cannot be written, so nothing was changed: {exc}"
    return None


def recorded(
    ctx: RunContext,
    report: ActionReport,
    args: Mapping[str, object],
    pre_state: object,
    result: Mapping[str, Any],
) -> ActionReport:
    """``report`` after appending its ledger line (none for a dry run). A line that cannot be
    written after changes were made is said in the summary, and a success becomes a failure:
    an unrecorded change must not look like a clean one."""
    if report.outcome is Outcome.PLANNED:
        return report
    try:
        record(ctx, report, args, pre_state, result)
    except LedgerError as exc:
        outcome = Outcome.FAILED if report.outcome is Outcome.DONE else report.outcome
        summary = f"{report.summary}; NOT RECORDED in the ledger: {exc}"
        return dataclasses.replace(report, outcome=outcome, summary=summary)
    return report
