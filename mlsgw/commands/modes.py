"""``mlsgw readonly on|off`` and ``mlsgw maintenance-mode on|off [--message …]`` (R-C3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from mlsgw.commands.common import ActionOptions, action_command, fail_early, run_action
from mlsgw.errors import UsageError
from mlsgw.modes import MAINTENANCE, READ_ONLY, toggle_run


class Switch(StrEnum):
    """``on`` or ``off``."""

    ON = "on"
    OFF = "off"


SwitchArg = Annotated[Switch, typer.Argument(help="on or off.", case_sensitive=False)]
MoveTrafficOpt = Annotated[
    bool,
    typer.Option(
        "--move-traffic",
        help="When traffic is pinned to an older revision, send 100% of it to the new "
        "revision (tags kept); without it the toggle refuses, since the new revision would "
        "serve nobody.",
    ),
]


@action_command
def readonly(
    state: SwitchArg,
    move_traffic: MoveTrafficOpt = False,
    *,
    options: ActionOptions,
) -> None:
    """Read-only mode on or off: writes refused, reads kept (a new revision).

    Every EVENT is answered `blocked: relay is read-only for maintenance`; REQ, COUNT and the
    REST API keep working. Sets MLSGW_LIMITATION__READ_ONLY on a new revision.

    Exit codes: 0 done (also: already so) or dry run, 1 failed (e.g. /health fails after the
    change), 3 refused (traffic pinned, not confirmed, no terminal and no --yes, usage error).

    Example: mlsgw readonly on --dry-run && mlsgw readonly on --yes
    """
    on = state is Switch.ON
    run_action(
        READ_ONLY.command,
        options,
        lambda ctx: toggle_run(ctx, READ_ONLY, on, move_traffic=move_traffic),
    )


@action_command
def maintenance_mode(
    state: SwitchArg,
    message: Annotated[
        str | None,
        typer.Option(
            "--message",
            "-m",
            help="The NOTICE new connections get (and the REST API's 503 error); only with `on`.",
        ),
    ] = None,
    move_traffic: MoveTrafficOpt = False,
    *,
    options: ActionOptions,
) -> None:
    """Maintenance mode on or off: new connections refused with a message (a new revision).

    New connections get the message as a NOTICE and are closed; the REST API and /health
    answer 503 maintenance. Sets MLSGW_INFORMATION__MAINTENANCE (and the message) on a new
    revision. A startup probe GET /health would fail then, so `on` makes it a TCP probe of
    the same port and `off` makes it GET /health again (other probes are left alone).

    Exit codes: 0 done (also: already so) or dry run, 1 failed (e.g. /health is not 503
    maintenance after the change), 3 refused (traffic pinned, not confirmed, no terminal and
    no --yes, usage error).

    Example: mlsgw maintenance-mode on --message "back at 14:00 UTC" --yes
    """
    on = state is Switch.ON
    if message is not None and not on:
        error = UsageError("--message is only taken with `maintenance-mode on`")
        fail_early(MAINTENANCE.command, error, as_json=options.as_json)
    run_action(
        MAINTENANCE.command,
        options,
        lambda ctx: toggle_run(ctx, MAINTENANCE, on, message=message, move_traffic=move_traffic),
    )
