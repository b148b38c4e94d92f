"""Times given on the command line (ISO 8601, ``HH:MM`` today (UTC), or ``+30m`` from now)
and times shown to people (``2026-12-03 14:20 UTC``: always with the year and the zone)."""

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


def utc_text(moment: datetime) -> str:
    """``2026-12-03 14:20 UTC``: ``moment`` in UTC to the minute, with the year and the zone
    (a time without a zone is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def utc_text_of(stamp: str) -> str:
    """An ISO 8601 ``stamp`` (a ledger line's time) as :func:`utc_text` shows it; a stamp that
    does not parse is returned unchanged, so nothing recorded is hidden."""
    try:
        return utc_text(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    except ValueError:
        return stamp
