"""NIP-01 subscription filters: parsing untrusted JSON and matching events in memory."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from relay.core.event import MAX_KIND, Event
from relay.core.reasons import Rejection, invalid

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_TAG_KEY = re.compile(r"#[a-zA-Z]\Z")
# Bounds keep one hostile filter from turning into a huge SQL statement.
MAX_VALUES_PER_FIELD = 1000
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter of a REQ/COUNT. ``None`` means the field was absent (matches anything)."""

    ids: frozenset[str] | None = None
    authors: frozenset[str] | None = None
    kinds: frozenset[int] | None = None
    tags: tuple[tuple[str, frozenset[str]], ...] = ()
    since: int | None = None
    until: int | None = None
    limit: int | None = None

    def matches(self, event: Event) -> bool:
        """True if ``event`` satisfies every field of this filter (``limit`` aside)."""
        if self.ids is not None and event.id not in self.ids:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.authors is not None and event.pubkey not in self.authors:
            return False
        if self.since is not None and event.created_at < self.since:
            return False
        if self.until is not None and event.created_at > self.until:
            return False
        for name, values in self.tags:
            if not any(len(t) > 1 and t[0] == name and t[1] in values for t in event.tags):
                return False
        return True

    def tag_values(self, name: str) -> frozenset[str] | None:
        """The values asked for tag ``name`` (``#name``), or None when not constrained."""
        for tag_name, values in self.tags:
            if tag_name == name:
                return values
        return None

    @property
    def value_count(self) -> int:
        """How many ids, authors, kinds and tag values the filter lists (its memory and
        index cost, bounded per connection by ``limitation.max_filter_values``)."""
        # Plain statements, no generators: this runs several times for every REQ.
        count = 0
        if self.ids is not None:
            count += len(self.ids)
        if self.authors is not None:
            count += len(self.authors)
        if self.kinds is not None:
            count += len(self.kinds)
        for _, values in self.tags:
            count += len(values)
        return count

    @property
    def is_empty_by_construction(self) -> bool:
        """True when the filter can match nothing (an empty list or since > until)."""
        for field in (self.ids, self.authors, self.kinds):
            if field is not None and not field:
                return True
        for _, values in self.tags:
            if not values:
                return True
        return self.since is not None and self.until is not None and self.since > self.until


def matches_any(filters: Iterable[Filter], event: Event) -> bool:
    """True if any of ``filters`` matches ``event``."""
    return any(f.matches(event) for f in filters)


def _hex_set(name: str, value: object) -> frozenset[str] | Rejection:
    if not isinstance(value, list):
        return invalid(f"filter field {name} must be an array")
    if len(value) > MAX_VALUES_PER_FIELD:
        return invalid(f"filter field {name} has more than {MAX_VALUES_PER_FIELD} values")
    for v in value:
        if not isinstance(v, str) or not _HEX64.match(v):
            return invalid(f"filter field {name} must hold 64-character lowercase hex strings")
    return frozenset(value)


def _timestamp(name: str, value: object) -> int | Rejection:
    # Bounded to int64: the store binds these as SQL integers (larger ones overflow).
    if type(value) is not int or not 0 <= value <= MAX_INT64:
        return invalid(f"filter field {name} must be a non-negative 64-bit integer")
    return value


def parse_filter(obj: object) -> Filter | Rejection:
    """Validate one decoded filter object; never raises on malformed input."""
    if not isinstance(obj, dict):
        return invalid("filter must be a JSON object")
    ids = authors = None
    kinds: frozenset[int] | None = None
    since = until = limit = None
    tags: list[tuple[str, frozenset[str]]] = []
    for key, value in obj.items():
        if key == "ids" or key == "authors":
            parsed = _hex_set(key, value)
            if isinstance(parsed, Rejection):
                return parsed
            if key == "ids":
                ids = parsed
            else:
                authors = parsed
        elif key == "kinds":
            if not isinstance(value, list) or len(value) > MAX_VALUES_PER_FIELD:
                return invalid("filter field kinds must be an array of integers")
            if not all(type(k) is int and 0 <= k <= MAX_KIND for k in value):
                return invalid(f"filter field kinds must hold integers between 0 and {MAX_KIND}")
            kinds = frozenset(value)
        elif key in ("since", "until", "limit"):
            number = _timestamp(key, value)
            if isinstance(number, Rejection):
                return number
            if key == "since":
                since = number
            elif key == "until":
                until = number
            else:
                limit = number
        elif isinstance(key, str) and _TAG_KEY.match(key):
            if not isinstance(value, list) or len(value) > MAX_VALUES_PER_FIELD:
                return invalid(f"filter field {key} must be an array of strings")
            if not all(isinstance(v, str) for v in value):
                return invalid(f"filter field {key} must be an array of strings")
            tags.append((key[1:], frozenset(value)))
        else:
            return invalid(f"unsupported filter field {key[:32]!r}")
    return Filter(ids, authors, kinds, tuple(tags), since, until, limit)
