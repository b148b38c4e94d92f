"""``mlsgw incident open|update|resolve|show|list`` (R-K9)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from mlsgw.commands.common import (
    PANEL_SAFETY,
    CommandOptions,
    RunbookCommand,
    fail_early,
    run_command,
    runbook_command,
)
from mlsgw.commands.usage import MlsgwGroup
from mlsgw.errors import UsageError
from mlsgw.incidents.model import IncidentStatus
from mlsgw.incidents.runbook import (
    OpenFields,
    UpdateFields,
    list_run,
    open_run,
    resolve_run,
    show_run,
    update_run,
)
from mlsgw.incidents.when import parse_when
from mlsgw.notify.base import Notifier
from mlsgw.notify.webhook import WebhookNotifier
from mlsgw.report import Report
from mlsgw.runbook.context import RunContext

app = typer.Typer(
    help="Incident notices from the runbook's templates: open, update, resolve, show, list. "
    "SEV1 critical (respond within 15 min), SEV2 major (1 h), SEV3 minor (4 h).",
    no_args_is_help=True,
    cls=MlsgwGroup,
)

NOTICE_FIELDS = ("incident_webhook", "ledger", "endpoint", "timeout")
READ_FIELDS = ("ledger", "endpoint", "timeout")

IdArg = Annotated[str, typer.Argument(metavar="ID", help="The incident id (INC-…).")]
NoteDryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the notice and the webhook it would go to; record and send nothing.",
        rich_help_panel=PANEL_SAFETY,
    ),
]
NeverAsksYes = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Accepted for scripts, and changes nothing: these commands change no cloud "
        "resource, so they never ask for confirmation (and need no terminal).",
        rich_help_panel=PANEL_SAFETY,
    ),
]


class OpenStatus(StrEnum):
    """The statuses of an incident not yet resolved (resolving takes `incident resolve`)."""

    INVESTIGATING = IncidentStatus.INVESTIGATING.value
    IDENTIFIED = IncidentStatus.IDENTIFIED.value
    MONITORING = IncidentStatus.MONITORING.value


StatusOpt = Annotated[
    OpenStatus | None,
    typer.Option("--status", case_sensitive=False, help="Where the response stands."),
]
CommanderOpt = Annotated[
    str | None, typer.Option("--commander", help="Incident commander (default: you, user@host).")
]
NextUpdateOpt = Annotated[
    str | None,
    typer.Option(
        "--next-update",
        help="When the next update is due: ISO 8601, HH:MM (UTC) or +30m "
        "(default: now plus the severity's interval: 30 min, 1 h, 4 h).",
    ),
]


def webhook_notifier(ctx: RunContext) -> Notifier | None:
    """The webhook of ``--webhook`` / ``[ops] incident_webhook``, if any; :class:`UsageError`
    naming where it was set when it is not an http(s) URL with a host."""
    url = ctx.target.incident_webhook
    if not url:
        return None
    source = ctx.target.sources.get("incident_webhook", "--webhook")
    return WebhookNotifier(url, ctx.target.timeout, source)


def _when(value: str | None, option: str, as_json: bool, command: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, datetime.now(UTC))
    except ValueError as exc:
        fail_early(command, UsageError(f"{option}: {exc}"), as_json=as_json)


def _run(
    command: str,
    options: CommandOptions,
    body: Callable[[RunContext], Report],
    *,
    dry_run: bool = False,
    yes: bool = False,
) -> None:
    options = dataclasses.replace(options, dry_run=dry_run, yes=yes)
    run_command(command, options, body, needs_service=False)


@app.command("open", cls=RunbookCommand)
@runbook_command(NOTICE_FIELDS)
def open_(
    sev: Annotated[int, typer.Option("--sev", min=1, max=3, help="Severity: 1, 2 or 3.")],
    title: Annotated[str, typer.Option("--title", help="What is happening, in a line.")],
    impact: Annotated[str, typer.Option("--impact", help="Who is affected and how.")],
    start: Annotated[
        str | None,
        typer.Option("--start", help="When it started: ISO 8601, HH:MM (UTC) (default: now)."),
    ] = None,
    status: StatusOpt = None,
    next_update: NextUpdateOpt = None,
    commander: CommanderOpt = None,
    dry_run: NoteDryRun = False,
    yes: NeverAsksYes = False,
    *,
    options: CommandOptions,
) -> None:
    """Open an incident and post its notice.

    The notification template filled from the options, printed, recorded in the ledger and
    POSTed as {"text": …} to --webhook or ops.incident_webhook (Slack, Google Chat), with the
    severity's escalation contacts (ops.contacts).

    Exit codes: 0 done or dry run, 1 recorded but the webhook failed, 3 refused (ledger not
    writable, usage error).

    Example: mlsgw incident open --sev 1 --title "Relay down" --impact "No client can connect"
    """
    fields = OpenFields(
        severity=sev,
        title=title,
        impact=impact,
        status=IncidentStatus(status or OpenStatus.INVESTIGATING),
        started=_when(start, "--start", options.as_json, "incident open"),
        next_update=_when(next_update, "--next-update", options.as_json, "incident open"),
        commander=commander,
    )
    _run(
        "incident open",
        options,
        lambda ctx: open_run(ctx, fields, webhook_notifier),
        dry_run=dry_run,
        yes=yes,
    )


@app.command("update", cls=RunbookCommand)
@runbook_command(NOTICE_FIELDS)
def update(
    incident_id: IdArg,
    note: Annotated[str | None, typer.Option("--note", help="What changed, in a line.")] = None,
    status: StatusOpt = None,
    impact: Annotated[str | None, typer.Option("--impact", help="The impact now.")] = None,
    sev: Annotated[int | None, typer.Option("--sev", min=1, max=3, help="A new severity.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="A new title.")] = None,
    next_update: NextUpdateOpt = None,
    commander: CommanderOpt = None,
    dry_run: NoteDryRun = False,
    yes: NeverAsksYes = False,
    *,
    options: CommandOptions,
) -> None:
    """Post an update of an open incident.

    The notification template with the changed fields and the note, printed, recorded and
    posted like the opening notice.

    Exit codes: 0 done or dry run, 1 recorded but the webhook failed, 3 refused (unknown or
    resolved incident, usage error).

    Example: mlsgw incident update INC-20261201-071500-1a2b3c --status identified --note "Store
    quota exhausted"
    """
    fields = UpdateFields(
        note=note,
        severity=sev,
        title=title,
        impact=impact,
        status=IncidentStatus(status) if status else None,
        next_update=_when(next_update, "--next-update", options.as_json, "incident update"),
        commander=commander,
    )
    _run(
        "incident update",
        options,
        lambda ctx: update_run(ctx, incident_id, fields, webhook_notifier),
        dry_run=dry_run,
        yes=yes,
    )


@app.command("resolve", cls=RunbookCommand)
@runbook_command(NOTICE_FIELDS)
def resolve(
    incident_id: IdArg,
    root_cause: Annotated[str, typer.Option("--root-cause", help="Why it happened.")],
    resolution: Annotated[str, typer.Option("--resolution", help="What was done.")],
    prevention: Annotated[
        str | None, typer.Option("--prevention", help="What will keep it from happening again.")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="When it ended: ISO 8601, HH:MM (UTC) (default: now)."),
    ] = None,
    dry_run: NoteDryRun = False,
    yes: NeverAsksYes = False,
    *,
    options: CommandOptions,
) -> None:
    """Resolve an incident and post the resolution notice.

    The resolution template (duration, root cause, resolution, prevention), printed, recorded
    and posted like the opening notice.

    Exit codes: 0 done or dry run, 1 recorded but the webhook failed, 3 refused (unknown or
    already resolved incident, usage error).

    Example: mlsgw incident resolve INC-… --root-cause "…" --resolution "Rolled back"
    """
    ended = _when(end, "--end", options.as_json, "incident resolve")
    _run(
        "incident resolve",
        options,
        lambda ctx: resolve_run(
            ctx,
            incident_id,
            root_cause=root_cause,
            fix=resolution,
            prevention=prevention,
            ended=ended,
            make_notifier=webhook_notifier,
        ),
        dry_run=dry_run,
        yes=yes,
    )


@app.command("show", cls=RunbookCommand)
@runbook_command(READ_FIELDS)
def show(incident_id: IdArg, *, options: CommandOptions) -> None:
    """Print an incident's timeline from the ledger.

    Exit codes: 0 shown, 3 refused (no such incident in the ledger, usage error).

    Example: mlsgw incident show INC-20261201-071500-1a2b3c
    """
    _run("incident show", options, lambda ctx: show_run(ctx, incident_id))


@app.command("list", cls=RunbookCommand)
@runbook_command(READ_FIELDS)
def list_(
    only_open: Annotated[
        bool, typer.Option("--open", help="Only incidents not resolved yet.")
    ] = False,
    *,
    options: CommandOptions,
) -> None:
    """List the incidents recorded in the ledger, oldest first.

    Exit codes: 0 listed, 3 the ledger cannot be read or usage error.

    Example: mlsgw incident list --open --json
    """
    _run("incident list", options, lambda ctx: list_run(ctx, only_open))
