"""Integer tag values of the MLS kinds (``exp``, ``seq``, ``k``)."""

from __future__ import annotations

import re

# ASCII digits only (str.isdigit also accepts "²", which int() refuses) and at most 18 of
# them, so every accepted value fits a signed 64-bit integer (SQLite, JSON state).
_UINT = re.compile(r"[0-9]{1,18}\Z")


def uint(value: str | None) -> int | None:
    """``value`` as a non-negative integer, or None if absent or not plain decimal digits."""
    if value is None or not _UINT.match(value):
        return None
    return int(value)
