"""The runbook's severity levels and the escalation contacts configured for each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Severity:
    """One severity level: its definition, how fast someone must respond, how often the
    notice is updated."""

    level: int
    name: str
    definition: str
    response: timedelta
    update_every: timedelta

    @property
    def label(self) -> str:
        """``SEV1``."""
        return f"SEV{self.level}"


SEVERITIES: dict[int, Severity] = {
    1: Severity(
        1,
        "Critical",
        "complete service outage, data loss or corruption, or a security breach",
        timedelta(minutes=15),
        timedelta(minutes=30),
    ),
    2: Severity(
        2,
        "Major",
        "significant degradation: a core function (message delivery, key packages, "
        "authentication) failing for many users, or error rates well above normal",
        timedelta(hours=1),
        timedelta(hours=1),
    ),
    3: Severity(
        3,
        "Minor",
        "limited impact: a non-critical function degraded or a workaround exists",
        timedelta(hours=4),
        timedelta(hours=4),
    ),
}


def duration_text(value: timedelta) -> str:
    """``15 min``, ``1 h``, ``4 h``, ``1 h 30 min``."""
    minutes = int(value.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{rest} min"] if rest or not hours else [])
    return " ".join(parts)


_PREFIX = re.compile(r"\s*((?:sev[123])(?:\s*/\s*sev[123])*)\s*:\s*(.+)", re.IGNORECASE)


def contacts_for(level: int, entries: tuple[str, ...]) -> tuple[str, ...]:
    """The contacts of ``entries`` (``[ops] contacts``) that apply to ``level``:
    ``"sev1: who"`` and ``"sev1/sev2: who"`` for those levels, a plain ``"who"`` for all."""
    found = []
    for entry in entries:
        match = _PREFIX.fullmatch(entry)
        if match is None:
            if entry.strip():
                found.append(entry.strip())
            continue
        levels = {int(part.strip()[-1]) for part in match.group(1).split("/")}
        if level in levels:
            found.append(match.group(2).strip())
    return tuple(found)
