"""An incident as recorded: its fields, and its timeline rebuilt from ledger lines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

COMMANDS = ("incident open", "incident update", "incident resolve", "incident notify")
"""The ledger commands that make up an incident's timeline."""


class IncidentStatus(StrEnum):
    """Where the response stands (the runbook's status line)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Incident:
    """The incident's current fields (later entries override earlier ones)."""

    id: str
    severity: int
    title: str
    impact: str
    status: IncidentStatus
    started: datetime
    commander: str
    next_update: datetime | None = None
    ended: datetime | None = None
    root_cause: str | None = None
    resolution: str | None = None
    prevention: str | None = None

    @property
    def resolved(self) -> bool:
        """The incident was resolved."""
        return self.status is IncidentStatus.RESOLVED

    def to_fields(self) -> dict[str, object]:
        """JSON-able fields (times as ISO 8601), for the ledger and ``--json``."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        out["status"] = self.status.value
        return out

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Incident:
        """The inverse of :meth:`to_fields`."""
        times = ("started", "next_update", "ended")
        values: dict[str, Any] = {
            f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data
        }
        for name in times:
            if values.get(name):
                values[name] = datetime.fromisoformat(str(values[name]))
        values["status"] = IncidentStatus(str(values["status"]))
        values["severity"] = int(values["severity"])
        return cls(**values)


@dataclass(frozen=True)
class TimelineEntry:
    """One ledger line of an incident."""

    time: str
    event: str
    """``open``, ``update``, ``resolve`` or ``notify``."""
    summary: str
    principal: str
    run_id: str
    incident: Incident | None
    """The incident's fields after this entry (``None`` for a delivery line)."""


@dataclass(frozen=True)
class Timeline:
    """An incident's entries, oldest first, and its current fields."""

    incident: Incident
    entries: tuple[TimelineEntry, ...]


def timelines(records: Iterable[Mapping[str, Any]]) -> dict[str, Timeline]:
    """Every incident in ``records`` (ledger lines, oldest first), by id, in opening order."""
    found: dict[str, list[TimelineEntry]] = {}
    current: dict[str, Incident] = {}
    for record in records:
        command = record.get("command")
        if command not in COMMANDS:
            continue
        args = record.get("args") or {}
        result = record.get("result") or {}
        incident_id = args.get("incident")
        if not isinstance(incident_id, str):
            continue
        fields = result.get("incident")
        incident = Incident.from_fields(fields) if isinstance(fields, Mapping) else None
        if incident is not None:
            current[incident_id] = incident
        elif incident_id not in current:
            continue  # a delivery line without its incident: nothing to attach it to
        found.setdefault(incident_id, []).append(
            TimelineEntry(
                time=str(record.get("time", "")),
                event=str(command).removeprefix("incident "),
                summary=str(result.get("summary", "")),
                principal=str(record.get("principal", "")),
                run_id=str(record.get("run_id", "")),
                incident=incident,
            )
        )
    return {key: Timeline(current[key], tuple(entries)) for key, entries in found.items()}
