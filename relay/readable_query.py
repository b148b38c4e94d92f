"""Stored reads whose ``limit`` counts only what the reader may see (R-A3, R-P5).

A REQ filter is answered with its newest ``limit`` events *that the reader may read*.
The MLS gateway first narrows each filter into sub-filters (see
:mod:`relay.mls.narrowing`); where narrowing could not express the read rules, the
first page may hold refused events, and this module reads on, older and older, until
the limit is filled, the store has nothing more, or a scan budget per request is spent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from relay.core.event import Event
from relay.core.filters import Filter
from relay.store.base import EventStore

# Events examined beyond each sub-filter's first page, per request: bounds what one REQ
# full of refused events can cost.
SCAN_BUDGET = 5000
# Pages read past the first are at least this long (a small limit would otherwise cost
# a store round trip per event).
MIN_PAGE = 100

Readable = Callable[[Event], bool]


def _newest_first(event: Event) -> tuple[int, str]:
    return (-event.created_at, event.id)


class _Budget:
    def __init__(self, events: int) -> None:
        self.left = events


async def _read_on(
    store: EventStore,
    sub: Filter,
    page: list[Event],
    readable: Readable,
    now: int,
    budget: _Budget,
) -> list[Event]:
    """The newest ``sub.limit`` readable events of ``sub``, given its first ``page``."""
    limit = sub.limit
    hits = {e.id: e for e in page if readable(e)}
    if limit is None:
        return list(hits.values())
    seen = {e.id for e in page}
    asked, base = limit, max(limit, MIN_PAGE)
    step = base
    while len(hits) < limit and page and len(page) >= asked and budget.left > 0:
        # ``until`` is inclusive: events of the oldest second come again and are skipped
        # by id. A page holding only those (one busy second) asks for twice as many.
        asked = min(step, budget.left)
        page = await store.query([replace(sub, until=page[-1].created_at, limit=asked)], now)
        budget.left -= len(page)
        fresh = [e for e in page if e.id not in seen]
        step = base if fresh else step * 2
        seen.update(e.id for e in fresh)
        hits.update((e.id, e) for e in fresh if readable(e))
    return sorted(hits.values(), key=_newest_first)[:limit]


async def query_readable(
    store: EventStore,
    plan: Sequence[tuple[Filter, Sequence[Filter]]],
    now: int,
    readable: Readable,
    *,
    scan_budget: int = SCAN_BUDGET,
) -> list[Event]:
    """Events for a REQ, newest first: for each ``(filter, sub_filters)`` of ``plan``,
    the newest ``filter.limit`` events matching some sub-filter that ``readable`` allows
    (all of them when the limit is None). The sub-filters must together match every
    readable event of the filter. One store query when nothing is refused; more, bounded
    by ``scan_budget`` examined events, when refused events used up a page."""
    subs = [sub for _, group in plan for sub in group]
    if not subs:
        return []
    first = await store.query(subs, now)
    unsplit = all(len(group) == 1 for _, group in plan)
    if unsplit and all(readable(e) for e in first):
        return first
    budget = _Budget(scan_budget)
    chosen: dict[str, Event] = {}
    for original, group in plan:
        picked: dict[str, Event] = {}
        for sub in group:
            page = _first_page(first, sub)
            for event in await _read_on(store, sub, page, readable, now, budget):
                picked[event.id] = event
        ordered = sorted(picked.values(), key=_newest_first)
        if original.limit is not None:
            ordered = ordered[: original.limit]
        chosen.update((e.id, e) for e in ordered)
    return sorted(chosen.values(), key=_newest_first)


def _first_page(first: Iterable[Event], sub: Filter) -> list[Event]:
    """What the store returned for ``sub`` in the combined first query: its newest
    ``limit`` matches (the combined answer holds them all, newest first)."""
    matches = [e for e in first if sub.matches(e)]
    return matches if sub.limit is None else matches[: sub.limit]
