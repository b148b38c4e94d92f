"""A large REQ answer read from the store a page at a time (R-P7).

A REQ may ask for up to ``max_limit`` events per filter, each up to ``max_message_length``
bytes: loaded whole, one answer to a client that reads slowly could hold hundreds of MB.
:func:`answer_pages` reads it in pages instead, and the caller asks for the next page only
once the client has read the last one, so a connection holds about one page.

Each filter is read newest first with the store's ordinary queries: the next page is the
same filter with ``until`` at the oldest second read so far, skipping the events of that
second already read (they come first within it: the store orders ties by id). The
filters' events are merged into the one order R-P5 gives every answer, newest first
(``created_at`` descending, then ``id`` ascending), as the store's one-read answer is.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import replace
from typing import NamedTuple

import orjson

from relay.core.filters import Filter
from relay.store.base import EventStore

PAGE_EVENTS = 100
"""At most this many events a page; also the answer size below which paging is not used."""
FIRST_PAGE_EVENTS = 20
"""The first page is this long: event sizes are unknown until it is read."""
PAGE_BYTES = 1024 * 1024
"""Later pages of large events hold fewer of them, aiming at about this many bytes."""


class _Stored(NamedTuple):
    """One stored event, ordered as an answer is: newest first, ties by lowest id."""

    newest_first: int  # -created_at
    event_id: str
    raw: bytes


def is_large(filters: Sequence[Filter]) -> bool:
    """Whether an answer to ``filters`` may hold more than one page of events."""
    return sum(f.limit if f.limit is not None else PAGE_EVENTS + 1 for f in filters) > PAGE_EVENTS


async def answer_pages(
    store: EventStore,
    filters: Sequence[Filter],
    now: int,
    observe: Callable[[float], None] = lambda seconds: None,
) -> AsyncGenerator[list[bytes], None]:
    """The stored JSON of the events matching ``filters``: each filter's newest ``limit``
    events (all of them without a limit), each event once, all of them newest first
    (``created_at`` descending, ties by lowest ``id``), in pages of at most
    :data:`PAGE_EVENTS` events (:data:`FIRST_PAGE_EVENTS` for the first) and, for large
    events, about :data:`PAGE_BYTES`. A store page is read only when the caller asks for
    an answer page that needs it; each filter holds at most its share of
    :data:`PAGE_BYTES`. ``observe`` is given the seconds of each store read."""
    live = [f for f in filters if not (f.is_empty_by_construction or f.limit == 0)]
    if not live:
        return
    share = PAGE_BYTES // len(live)
    async with AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(aclosing(_filter_events(store, f, now, share, observe)))
            for f in live
        ]
        merged = await stack.enter_async_context(aclosing(_merged(streams)))
        page: list[bytes] = []
        size = 0
        page_events = FIRST_PAGE_EVENTS
        async for event in merged:
            page.append(event.raw)
            size += len(event.raw)
            if len(page) >= page_events or size >= PAGE_BYTES:
                yield page
                page, size, page_events = [], 0, PAGE_EVENTS
        if page:
            yield page


async def _merged(streams: Sequence[AsyncIterator[_Stored]]) -> AsyncGenerator[_Stored, None]:
    """The streams' events in answer order, an event that several give once (the same
    event sorts to the same place in each, so its copies come one after another). The
    next event of a stream is asked for only when the caller wants the one after."""
    heads: list[tuple[_Stored, int]] = []
    for index, stream in enumerate(streams):
        if (first := await anext(stream, None)) is not None:
            heads.append((first, index))
    heapq.heapify(heads)
    last_id = ""
    while heads:
        event, index = heads[0]
        if event.event_id != last_id:
            last_id = event.event_id
            yield event
        following = await anext(streams[index], None)
        if following is None:
            heapq.heappop(heads)
        else:
            heapq.heapreplace(heads, (following, index))


async def _filter_events(
    store: EventStore,
    f: Filter,
    now: int,
    page_bytes: int,
    observe: Callable[[float], None],
) -> AsyncGenerator[_Stored, None]:
    """One filter's newest ``limit`` events, newest first, read a store page at a time:
    :data:`FIRST_PAGE_EVENTS`, then up to :data:`PAGE_EVENTS` or about ``page_bytes``."""
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
        fresh: list[_Stored] = []
        for raw in raws:
            event = orjson.loads(raw)
            event_id, created_at = str(event["id"]), int(event["created_at"])
            if created_at == until and event_id in seen_at_until:
                continue
            fresh.append(_Stored(-created_at, event_id, raw))
        fresh = fresh[:want]
        if not fresh:
            return
        if remaining is not None:
            remaining -= len(fresh)
        oldest = -fresh[-1].newest_first
        if oldest != until:
            seen_at_until = set()
        seen_at_until.update(e.event_id for e in fresh if e.newest_first == -oldest)
        until = oldest
        size = sum(len(e.raw) for e in fresh)
        ask = max(1, min(PAGE_EVENTS, page_bytes * len(fresh) // max(size, 1)))
        for event in fresh:
            yield event
        if len(raws) < asked:  # the store has no more
            return
