"""Live subscriptions indexed by id, author, tag value and kind, for fan-out (issue 8 §2).

Each filter is filed under the values of its most selective field (ids, then authors,
then its tag with the fewest values, then kinds); a filter with none of them goes in a
list checked for every event. An event looks up only the buckets of its own id, author,
kind and single-letter tags, then checks the few filters found in full, so its cost
grows with its tags and the subscriptions that can match it, not with every filter of
every connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relay.core.event import Event
from relay.core.filters import Filter

Slot = tuple[int, str]
"""(connection id, subscription id)."""

_Key = tuple[str, str | int] | tuple[str, str, str]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: equal filters may repeat
class _Entry:
    slot: Slot
    filter: Filter


def _anchor(f: Filter) -> list[_Key] | None:
    """The keys ``f`` is filed under; None: it must be checked against every event."""
    if f.ids is not None:
        return [("i", v) for v in f.ids]
    if f.authors is not None:
        return [("a", v) for v in f.authors]
    if f.tags:
        name, values = min(f.tags, key=lambda item: len(item[1]))
        return [("t", name, v) for v in values]
    if f.kinds is not None:
        return [("k", k) for k in f.kinds]
    return None


class EventView:
    """An event's single-letter tag values by name, built once per fan-out."""

    __slots__ = ("event", "tags")

    def __init__(self, event: Event) -> None:
        self.event = event
        tags: dict[str, set[str]] = {}
        for t in event.tags:
            if len(t) > 1 and len(t[0]) == 1:
                tags.setdefault(t[0], set()).add(t[1])
        self.tags = tags

    def keys(self) -> Iterable[_Key]:
        """Every index key this event can be found under."""
        e = self.event
        yield ("i", e.id)
        yield ("a", e.pubkey)
        yield ("k", e.kind)
        for name, values in self.tags.items():
            for value in values:
                yield ("t", name, value)

    def matches(self, f: Filter) -> bool:
        """:meth:`Filter.matches` with tag lookups in sets (events may carry 2,000 tags)."""
        e = self.event
        if f.ids is not None and e.id not in f.ids:
            return False
        if f.kinds is not None and e.kind not in f.kinds:
            return False
        if f.authors is not None and e.pubkey not in f.authors:
            return False
        if f.since is not None and e.created_at < f.since:
            return False
        if f.until is not None and e.created_at > f.until:
            return False
        for name, values in f.tags:
            present = self.tags.get(name)
            if present is None or values.isdisjoint(present):
                return False
        return True


class SubscriptionIndex:
    """Every live subscription of one relay process, looked up by event."""

    def __init__(self) -> None:
        self._buckets: dict[_Key, dict[_Entry, None]] = {}
        self._unanchored: dict[_Entry, None] = {}
        self._filed: dict[Slot, list[tuple[_Key | None, _Entry]]] = {}
        self.checks = 0
        """Filters checked in full by :meth:`match` so far (its cost, for metrics)."""

    def __len__(self) -> int:
        return len(self._filed)

    def add(self, conn_id: int, sub_id: str, filters: Iterable[Filter]) -> None:
        """File subscription ``sub_id`` of ``conn_id`` (replacing one with the same id)."""
        slot = (conn_id, sub_id)
        self.remove(conn_id, sub_id)
        filed: list[tuple[_Key | None, _Entry]] = []
        for f in filters:
            if f.is_empty_by_construction:
                continue
            entry = _Entry(slot, f)
            keys = _anchor(f)
            if keys is None:
                self._unanchored[entry] = None
                filed.append((None, entry))
                continue
            for key in keys:
                self._buckets.setdefault(key, {})[entry] = None
                filed.append((key, entry))
        self._filed[slot] = filed

    def remove(self, conn_id: int, sub_id: str) -> None:
        """Forget one subscription (nothing happens if it is unknown)."""
        filed = self._filed.pop((conn_id, sub_id), None)
        if not filed:
            return
        for key, entry in filed:
            bucket = self._unanchored if key is None else self._buckets.get(key)
            if bucket is None:
                continue
            bucket.pop(entry, None)
            if key is not None and not bucket:
                del self._buckets[key]

    def remove_connection(self, conn_id: int, sub_ids: Iterable[str]) -> None:
        """Forget every listed subscription of ``conn_id``."""
        for sub_id in list(sub_ids):
            self.remove(conn_id, sub_id)

    def match(self, event: Event) -> dict[int, list[str]]:
        """Subscription ids per connection with a filter matching ``event`` (read rules
        are the caller's business)."""
        if not self._filed:  # no live subscription: nothing to build or look up
            return {}
        view = EventView(event)
        found: dict[int, list[str]] = {}
        seen: set[Slot] = set()

        def consider(entries: Iterable[_Entry]) -> None:
            for entry in entries:
                slot = entry.slot
                if slot in seen:
                    continue
                self.checks += 1
                if view.matches(entry.filter):
                    seen.add(slot)
                    found.setdefault(slot[0], []).append(slot[1])

        consider(self._unanchored)
        buckets = self._buckets
        for key in view.keys():
            bucket = buckets.get(key)
            if bucket:
                consider(bucket)
        return found
