"""``mlsgw incident open|update|resolve|show|list`` (R-K9): fill the runbook's templates,
record the incident's timeline in the ledger, and post the notice to a chat webhook.

The ledger line is written before the webhook is called, so a webhook that fails or hangs
never loses the record; its outcome is a second ledger line (``incident notify``), and the
report says what was not delivered (exit 1) with the notice printed for pasting by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mlsgw.errors import LedgerError, Refused, UsageError
from mlsgw.incidents.model import Incident, IncidentStatus, Timeline, timelines
from mlsgw.incidents.severity import SEVERITIES
from mlsgw.incidents.templates import notification, resolution
from mlsgw.incidents.when import utc_text, utc_text_of
from mlsgw.ledger.chain import principal
from mlsgw.notify.base import Delivery, Notifier
from mlsgw.report import ActionReport, Outcome, Status, Step, Table
from mlsgw.runbook.context import RunContext

MakeNotifier = Callable[[RunContext], Notifier | None]


@dataclass(frozen=True)
class OpenFields:
    """What ``incident open`` is given (times already parsed)."""

    severity: int
    title: str
    impact: str
    status: IncidentStatus = IncidentStatus.INVESTIGATING
    started: datetime | None = None
    """``None``: now."""
    next_update: datetime | None = None
    """``None``: now plus the severity's update interval."""
    commander: str | None = None


@dataclass(frozen=True)
class UpdateFields:
    """What ``incident update`` may change; ``None`` keeps the current value."""

    note: str | None = None
    severity: int | None = None
    title: str | None = None
    impact: str | None = None
    status: IncidentStatus | None = None
    next_update: datetime | None = None
    commander: str | None = None


def _check_severity(level: int) -> None:
    if level not in SEVERITIES:
        raise UsageError(f"--sev must be 1, 2 or 3, got {level}")


def find(ctx: RunContext, incident_id: str) -> Timeline:
    """The incident's timeline; :class:`Refused` when the ledger has no such incident."""
    found = timelines(ctx.ledger.records()).get(incident_id)
    if found is None:
        raise Refused(f"the ledger {ctx.ledger.location} has no incident {incident_id}")
    return found


def _publish(
    ctx: RunContext,
    command: str,
    incident: Incident,
    text: str,
    extra: dict[str, object],
    make_notifier: MakeNotifier,
    verb: str,
) -> ActionReport:
    """Check the webhook, record the entry, then deliver the notice and record the delivery:
    the report. A webhook that is not usable is a :class:`UsageError` with nothing recorded."""
    notifier = make_notifier(ctx)
    data: dict[str, object] = {"incident": incident.to_fields(), "notice": text}
    notices = (text,)
    if ctx.dry_run:
        return _dry_run(ctx, command, incident.id, verb, notifier, notices, data)
    summary = f"{incident.id} {verb}: {SEVERITIES[incident.severity].label} {incident.title}"
    try:
        ctx.ledger.append(
            command=command,
            run_id=ctx.run_id,
            args={"incident": incident.id, **extra},
            plan=[],
            pre_state=None,
            result={"outcome": "done", "summary": summary, **data},
        )
    except LedgerError as exc:
        step = Step("ledger", Status.CRITICAL, str(exc))
        return ActionReport(
            command,
            Outcome.REFUSED,
            f"not recorded, so not sent: the ledger cannot be written: {exc}",
            ctx.run_id,
            steps=(step,),
            notices=notices,
            data=data,
        )
    steps = [Step("ledger", Status.OK, f"recorded in {ctx.ledger.location}")]
    if notifier is None:
        steps.append(Step("webhook", Status.SKIPPED, "no --webhook or [ops] incident_webhook"))
        return ActionReport(
            command,
            Outcome.DONE,
            summary,
            ctx.run_id,
            steps=tuple(steps),
            notices=notices,
            data=data,
        )
    ctx.reporter.step(f"posting the notice to {notifier.where}")
    delivery = notifier.send(text)
    data["delivery"] = {"ok": delivery.ok, "detail": delivery.detail}
    steps.append(Step("webhook", Status.OK if delivery.ok else Status.CRITICAL, delivery.detail))
    recorded = _record_delivery(ctx, incident.id, delivery)
    if recorded is not None:
        steps.append(Step("ledger (delivery)", Status.WARNING, recorded))
    if delivery.ok:
        return ActionReport(
            command,
            Outcome.DONE,
            summary,
            ctx.run_id,
            steps=tuple(steps),
            notices=notices,
            data=data,
        )
    return ActionReport(
        command,
        Outcome.FAILED,
        f"{summary} (recorded in the ledger), but the notice was NOT delivered: "
        f"{delivery.detail}; paste it from above",
        ctx.run_id,
        steps=tuple(steps),
        notices=notices,
        data=data,
    )


def _dry_run(
    ctx: RunContext,
    command: str,
    incident_id: str,
    verb: str,
    notifier: Notifier | None,
    notices: tuple[str, ...],
    data: dict[str, object],
) -> ActionReport:
    """The planned report: the notice and the webhook it would go to (its host only: the
    URL is the credential); nothing recorded or sent."""
    where = notifier.where if notifier is not None else None
    goes = (
        f"would be posted to {where}"
        if where
        else "would not be posted (no --webhook or [ops] incident_webhook)"
    )
    return ActionReport(
        command,
        Outcome.PLANNED,
        f"dry run: {incident_id} would be {verb}; the notice {goes}; nothing recorded or sent",
        ctx.run_id,
        steps=(
            Step("ledger", Status.SKIPPED, f"dry run: not recorded in {ctx.ledger.location}"),
            Step("webhook", Status.SKIPPED, f"dry run: {goes}"),
        ),
        notices=notices,
        data={**data, "webhook": where},
    )


def _record_delivery(ctx: RunContext, incident_id: str, delivery: Delivery) -> str | None:
    """Append the delivery's outcome; the reason when that could not be written."""
    outcome = "done" if delivery.ok else "failed"
    summary = ("notice delivered: " if delivery.ok else "notice NOT delivered: ") + delivery.detail
    try:
        ctx.ledger.append(
            command="incident notify",
            run_id=ctx.run_id,
            args={"incident": incident_id},
            plan=[],
            pre_state=None,
            result={"outcome": outcome, "summary": summary, "delivered": delivery.ok},
        )
    except LedgerError as exc:
        return f"the delivery's outcome was not recorded: {exc}"
    return None


def new_incident_id(ctx: RunContext) -> str:
    """``INC-20261201-071500-1a2b3c``: sortable, and unique like the run id it comes from."""
    stamp, _, suffix = ctx.run_id.partition("-")
    return f"INC-{stamp[:8]}-{stamp[9:15]}-{suffix}"


def open_run(ctx: RunContext, fields: OpenFields, make_notifier: MakeNotifier) -> ActionReport:
    """Open an incident: the notification template filled, recorded, posted."""
    _check_severity(fields.severity)
    now = ctx.clock()
    sev = SEVERITIES[fields.severity]
    started = fields.started or now
    incident = Incident(
        id=new_incident_id(ctx),
        severity=fields.severity,
        title=fields.title,
        impact=fields.impact,
        status=fields.status,
        started=started,
        commander=fields.commander or principal(),
        next_update=fields.next_update or now + sev.update_every,
    )
    if incident.status is IncidentStatus.RESOLVED:
        raise UsageError("an incident is opened unresolved; use `mlsgw incident resolve ID`")
    text = notification(incident, ctx.target.contacts)
    args = {"severity": fields.severity, "title": fields.title}
    return _publish(ctx, "incident open", incident, text, args, make_notifier, "opened")


def _open_one(ctx: RunContext, incident_id: str, what: str) -> Incident:
    incident = find(ctx, incident_id).incident
    if incident.resolved:
        when = f" at {utc_text(incident.ended)}" if incident.ended else ""
        raise Refused(
            f"{incident_id} was resolved{when}; cannot {what} it (open a new incident instead)"
        )
    return incident


def update_run(
    ctx: RunContext, incident_id: str, fields: UpdateFields, make_notifier: MakeNotifier
) -> ActionReport:
    """Post an update: the notification template with the changes and the note."""
    if fields.severity is not None:
        _check_severity(fields.severity)
    if fields.status is IncidentStatus.RESOLVED:
        raise UsageError("use `mlsgw incident resolve ID` with the root cause and resolution")
    current = _open_one(ctx, incident_id, "update")
    changes = {
        name: value
        for name in ("severity", "title", "impact", "status", "commander", "next_update")
        if (value := getattr(fields, name)) is not None
    }
    if not changes and not fields.note:
        raise UsageError("nothing to update: give --note or a field to change")
    updated = dataclasses.replace(current, **changes)
    if fields.next_update is None:
        updated = dataclasses.replace(
            updated, next_update=ctx.clock() + SEVERITIES[updated.severity].update_every
        )
    text = notification(updated, ctx.target.contacts, note=fields.note, first=False)
    args: dict[str, object] = {"note": fields.note, "changed": sorted(changes)}
    return _publish(ctx, "incident update", updated, text, args, make_notifier, "updated")


def resolve_run(
    ctx: RunContext,
    incident_id: str,
    *,
    root_cause: str,
    fix: str,
    prevention: str | None,
    ended: datetime | None,
    make_notifier: MakeNotifier,
) -> ActionReport:
    """Resolve: the resolution template (duration, root cause, resolution, prevention).
    An end before the incident's start is a :class:`UsageError` naming both times."""
    current = _open_one(ctx, incident_id, "resolve")
    end = ended or ctx.clock()
    if end < current.started:
        given = "--end" if ended else "now"
        raise UsageError(
            f"{given} ({utc_text(end)}) is before {incident_id} started "
            f"({utc_text(current.started)}): give an --end after the start"
        )
    resolved = dataclasses.replace(
        current,
        status=IncidentStatus.RESOLVED,
        ended=end,
        next_update=None,
        root_cause=root_cause,
        resolution=fix,
        prevention=prevention,
    )
    text = resolution(resolved, ctx.target.contacts)
    return _publish(ctx, "incident resolve", resolved, text, {}, make_notifier, "resolved")


def timeline_data(timeline: Timeline) -> list[dict[str, object]]:
    """The timeline's entries, oldest first, as ``--json`` gives them (``show`` and ``list``
    alike): time (ISO 8601, as recorded), event, summary, principal, run id, and the
    incident's fields after the entry (``None`` for a delivery line)."""
    return [
        {
            "time": e.time,
            "event": e.event,
            "summary": e.summary,
            "principal": e.principal,
            "run_id": e.run_id,
            "incident": e.incident.to_fields() if e.incident else None,
        }
        for e in timeline.entries
    ]


def show_run(ctx: RunContext, incident_id: str) -> ActionReport:
    """The incident's timeline, oldest first, with its current fields."""
    timeline = find(ctx, incident_id)
    incident = timeline.incident
    rows = tuple(
        (
            utc_text_of(e.time),
            e.event,
            e.incident.status.value if e.incident else "",
            e.summary.removeprefix(f"{incident.id} "),
            e.principal,
        )
        for e in timeline.entries
    )
    sev = SEVERITIES[incident.severity]
    return ActionReport(
        "incident show",
        Outcome.DONE,
        f"{incident.id}: {sev.label} {incident.title} — {incident.status.value}",
        ctx.run_id,
        tables=(
            Table(
                f"Incident {incident.id}",
                ("time", "event", "status", "summary", "by"),
                rows,
            ),
        ),
        data={"incident": incident.to_fields(), "timeline": timeline_data(timeline)},
    )


def list_run(ctx: RunContext, only_open: bool) -> ActionReport:
    """Every incident in the ledger (or the unresolved ones), oldest first."""
    found = list(timelines(ctx.ledger.records()).values())
    if only_open:
        found = [t for t in found if not t.incident.resolved]
    rows = tuple(
        (
            t.incident.id,
            SEVERITIES[t.incident.severity].label,
            t.incident.status.value,
            utc_text(t.incident.started),
            t.incident.title,
        )
        for t in found
    )
    unresolved = sum(1 for t in found if not t.incident.resolved)
    return ActionReport(
        "incident list",
        Outcome.DONE,
        f"{len(found)} incident(s), {unresolved} unresolved",
        ctx.run_id,
        tables=(
            Table(
                "Incidents",
                ("id", "sev", "status", "started", "title"),
                rows,
            ),
        ),
        data={
            "incidents": [
                {**t.incident.to_fields(), "entries": len(t.entries), "timeline": timeline_data(t)}
                for t in found
            ]
        },
    )
