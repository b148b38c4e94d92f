"""The checks every backup and restore action makes before its first change."""

from __future__ import annotations

from mlsgw.errors import LedgerError
from mlsgw.runbook.context import RunContext


def unwritable_ledger(ctx: RunContext) -> str | None:
    """Why nothing may change because the ledger cannot be written, else ``None``."""
    try:
        ctx.ledger.check_writable()
    except LedgerError as exc:
        return f"the ledger cannot be written, so nothing was changed: {exc}"
    return None
