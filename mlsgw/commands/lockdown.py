"""``mlsgw lockdown`` and ``mlsgw lockdown --revert [RUN_ID]`` (R-K6)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mlsgw.commands.common import (
    MAX_LOG_HOURS,
    ActionOptions,
    action_command,
    fail_early,
    run_action,
)
from mlsgw.errors import UsageError
from mlsgw.ledger import default_path
from mlsgw.lockdown import lockdown_run, revert_run


def evidence_root() -> Path:
    """``$XDG_STATE_HOME/mlsgw/evidence`` (``~/.local/state/mlsgw/evidence``), beside the
    default ledger."""
    return default_path(os.environ).parent / "evidence"


@action_command
def lockdown(
    run_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID",
            help="With --revert: the lockdown's run id (default: the last one that changed "
            "something).",
        ),
    ] = None,
    revert: Annotated[
        bool,
        typer.Option("--revert", help="Restore the policy and flag a lockdown saved."),
    ] = False,
    evidence_hours: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=MAX_LOG_HOURS,
            help="Hours of the service's logs kept as evidence.",
        ),
    ] = 24.0,
    evidence_dir: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the evidence, created new "
            "(default: ~/.local/state/mlsgw/evidence/RUN_ID)."
        ),
    ] = None,
    *,
    options: ActionOptions,
) -> None:
    """Security incident: only IAM-authorised callers may invoke the service.

    Removes public invokers (allUsers, allAuthenticatedUsers) and sets invoker_iam_disabled
    false, keeping the pre-state in the ledger and the service's recent logs as evidence;
    --revert [RUN_ID] restores that pre-state exactly.

    Exit codes: 0 done (also: already locked, nothing written), 1 failed, 3 refused (not
    confirmed, no terminal and no --yes, ledger not writable, nothing to revert, usage error).

    Example: mlsgw lockdown --dry-run && mlsgw lockdown --yes
    """
    if run_id is not None and not revert:
        error = UsageError(f"{run_id!r}: a run id is only taken with --revert")
        fail_early("lockdown", error, as_json=options.as_json)
    if revert:
        run_action("lockdown", options, lambda ctx: revert_run(ctx, run_id))
    run_action(
        "lockdown",
        options,
        lambda ctx: lockdown_run(ctx, evidence_hours, evidence_dir or evidence_root() / ctx.run_id),
    )
