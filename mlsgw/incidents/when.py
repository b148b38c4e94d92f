"""Times given on the command line: ISO 8601, ``HH:MM`` today (UTC), or ``+30m`` from now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"\+(\d+)\s*(m|min|h)", re.IGNORECASE)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def parse_when(text: str, now: datetime) -> datetime:
    """``text`` as an aware UTC time; :class:`ValueError` naming the accepted forms.

    A time without a zone is UTC (the runbook's notices are in UTC); ``HH:MM`` is today.
    """
    text = text.strip()
    if match := _RELATIVE.fullmatch(text):
        amount = int(match.group(1))
        unit = match.group(2).lower()
        return now + (timedelta(hours=amount) if unit == "h" else timedelta(minutes=amount))
    if match := _CLOCK.fullmatch(text):
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-12-01T14:00Z), HH:MM (UTC, today) "
            "or +30m / +2h from now"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
