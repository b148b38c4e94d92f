"""A large REQ answer read from the store a page at a time (R-P7).

A REQ may ask for up to ``max_limit`` events per filter, each up to ``max_message_length``
bytes: loaded whole, one answer to a client that reads slowly could hold hundreds of MB.
:func:`answer_pages` reads it in pages instead, and the caller asks for the next page only
once the client has read the last one, so a connection holds about one page.

Each filter is read newest first with the store's ordinary queries: the next page is the
same filter with ``until`` at the oldest second read so far, skipping the events of that
second already read (they come first within it: the store orders ties by id).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace

import orjson

from relay.core.filters import Filter
from relay.store.base import EventStore

PAGE_EVENTS = 100
"""At most this many events a page; also the answer size below which paging is not used."""
FIRST_PAGE_EVENTS = 20
"""The first page of a filter is this long: event sizes are unknown until it is read."""
PAGE_BYTES = 1024 * 1024
"""Later pages of large events ask for fewer of them, aiming at about this many bytes."""


def is_large(filters: Sequence[Filter]) -> bool:
    """Whether an answer to ``filters`` may hold more than one page of events."""
    return sum(f.limit if f.limit is not None else PAGE_EVENTS + 1 for f in filters) > PAGE_EVENTS


def _id_and_time(raw: bytes) -> tuple[str, int]:
    event = orjson.loads(raw)
    return str(event["id"]), int(event["created_at"])


async def answer_pages(
    store: EventStore,
    filters: Sequence[Filter],
    now: int,
    observe: Callable[[float], None] = lambda seconds: None,
) -> AsyncGenerator[list[bytes], None]:
    """The stored JSON of the events matching ``filters``: each filter's newest ``limit``
    events (all of them without a limit), newest first filter by filter, each event once
    (an event a previous filter already gave still counts against this one's limit), in
    pages of at most :data:`PAGE_EVENTS` events (:data:`FIRST_PAGE_EVENTS` for a filter's
    first) and, for large events, about :data:`PAGE_BYTES`. The next page is read only
    when the caller asks for it. ``observe`` is given the seconds of each store read."""
    sent: set[str] = set()
    for f in filters:
        if f.is_empty_by_construction or f.limit == 0:
            continue
        async for page in _filter_pages(store, f, now, sent, observe):
            yield page


async def _filter_pages(
    store: EventStore,
    f: Filter,
    now: int,
    sent: set[str],
    observe: Callable[[float], None],
) -> AsyncGenerator[list[bytes], None]:
    remaining = f.limit
    until = f.until
    seen_at_until: set[str] = set()  # ids of the second ``until`` already read
    ask = FIRST_PAGE_EVENTS
    while remaining is None or remaining > 0:
        want = ask if remaining is None else min(ask, remaining)
        asked = want + len(seen_at_until)
        page_filter = [replace(f, until=until, limit=asked)]
        started = time.perf_counter()
        try:
            raws = store.query_raw_now(page_filter, now)  # small pages: often answered at once
            if raws is None:
                raws = await store.query_raw(page_filter, now)
        finally:
            observe(time.perf_counter() - started)
        fresh: list[tuple[str, int, bytes]] = []
        for raw in raws:
            event_id, created_at = _id_and_time(raw)
            if created_at == until and event_id in seen_at_until:
                continue
            fresh.append((event_id, created_at, raw))
        fresh = fresh[:want]
        if not fresh:
            return
        if remaining is not None:
            remaining -= len(fresh)
        oldest = fresh[-1][1]
        if oldest != until:
            seen_at_until = set()
        seen_at_until.update(event_id for event_id, created_at, _ in fresh if created_at == oldest)
        until = oldest
        page = [raw for event_id, _, raw in fresh if event_id not in sent]
        sent.update(event_id for event_id, _, _ in fresh)
        size = sum(len(raw) for _, _, raw in fresh)
        ask = max(1, min(PAGE_EVENTS, PAGE_BYTES * len(fresh) // max(size, 1)))
        if page:
            yield page
        if len(raws) < asked:  # the store has no more
            return
