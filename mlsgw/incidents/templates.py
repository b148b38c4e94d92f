"""The runbook's notification and resolution templates, filled from an incident."""

from __future__ import annotations

from mlsgw.incidents.model import Incident
from mlsgw.incidents.severity import SEVERITIES, contacts_for, duration_text
from mlsgw.incidents.when import utc_text


def _when(incident: Incident, which: str) -> str:
    value = getattr(incident, which)
    return "—" if value is None else utc_text(value)


def _escalation(incident: Incident, contacts: tuple[str, ...]) -> str:
    return (
        ", ".join(contacts_for(incident.severity, contacts))
        or "(none configured in [ops] contacts)"
    )


def notification(
    incident: Incident, contacts: tuple[str, ...], *, note: str | None = None, first: bool = True
) -> str:
    """The notification template (on open, and on every update with ``note``)."""
    sev = SEVERITIES[incident.severity]
    head = "🚨 INCIDENT" if first else "🔄 INCIDENT UPDATE"
    lines = [
        f"{head}: {incident.title}",
        f"Severity: {sev.label} ({sev.name}: {sev.definition}); "
        f"response within {duration_text(sev.response)}",
        f"Status: {incident.status.value.capitalize()}",
        f"Impact: {incident.impact}",
    ]
    if note:
        lines.append(f"Update: {note}")
    lines += [
        f"Start Time: {_when(incident, 'started')}",
        f"Next Update: {_when(incident, 'next_update')}",
        f"Incident Commander: {incident.commander}",
        f"Escalation: {_escalation(incident, contacts)}",
        f"Incident ID: {incident.id}",
    ]
    return "\n".join(lines)


def resolution(incident: Incident, contacts: tuple[str, ...]) -> str:
    """The resolution template."""
    sev = SEVERITIES[incident.severity]
    took = ""
    if incident.ended is not None:
        took = f" ({duration_text(incident.ended - incident.started)})"
    lines = [
        f"✅ RESOLVED: {incident.title}",
        f"Severity: {sev.label} ({sev.name})",
        f"Duration: {_when(incident, 'started')} – {_when(incident, 'ended')}{took}",
        f"Impact: {incident.impact}",
        f"Root Cause: {incident.root_cause or '—'}",
        f"Resolution: {incident.resolution or '—'}",
        f"Prevention: {incident.prevention or '—'}",
        f"Incident Commander: {incident.commander}",
        f"Escalation: {_escalation(incident, contacts)}",
        f"Incident ID: {incident.id}",
    ]
    return "\n".join(lines)
