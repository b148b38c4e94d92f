"""A large REQ answer read a page at a time: the same events as one query, in bounded pages,
the next page read only when asked (against the real SQLite store)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from relay.answer_pages import (
    FIRST_PAGE_EVENTS,
    PAGE_BYTES,
    PAGE_EVENTS,
    answer_pages,
    is_large,
)
from relay.core.filters import Filter
from relay.store.sqlite import SqliteStore
from tests.support.nostr import Keys

ALICE, BOB = Keys(), Keys()
NOW = 1_800_000_000


class CountingStore(SqliteStore):
    """The SQLite store, counting its reads (on the event loop or a reader thread)."""

    reads = 0

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        self.reads += 1
        return super().query_raw_now(filters, now)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    opened = CountingStore(tmp_path / "relay.db")
    await opened.open()
    yield opened
    await opened.close()


async def fill(store: SqliteStore, count: int, per_second: int, content: str = "x") -> None:
    """``count`` kind-1 events, alternately by Alice and Bob, ``per_second`` to a second."""
    events = [
        (ALICE if n % 2 else BOB).sign(1, f"{content}{n}", created_at=NOW - n // per_second)
        for n in range(count)
    ]
    await store.save_many(events, NOW)


async def collect(store: SqliteStore, filters: list[Filter]) -> list[list[bytes]]:
    return [page async for page in answer_pages(store, filters, NOW)]


def ids(raws: list[bytes]) -> list[str]:
    return [orjson.loads(raw)["id"] for raw in raws]


async def test_pages_hold_the_events_one_query_gives_in_its_order(store: CountingStore) -> None:
    """250 of 300 events, 40 to a second (ties across page boundaries): the pages joined are
    exactly the single query's answer, none over PAGE_EVENTS."""
    await fill(store, 300, per_second=40)
    f = Filter(kinds=frozenset({1}), limit=250)
    pages = await collect(store, [f])
    assert [len(page) for page in pages] == [FIRST_PAGE_EVENTS, PAGE_EVENTS, PAGE_EVENTS, 30]
    assert ids([raw for page in pages for raw in page]) == ids(await store.query_raw([f], NOW))


async def test_a_busy_second_longer_than_a_page_is_read_through(store: CountingStore) -> None:
    """All 260 events in one second: still every event once, in the store's order."""
    await fill(store, 260, per_second=1000)
    f = Filter(limit=1000)
    joined = [raw for page in await collect(store, [f]) for raw in page]
    assert ids(joined) == ids(await store.query_raw([f], NOW)) and len(joined) == 260


async def test_large_events_make_smaller_pages(store: CountingStore) -> None:
    """Events of ~100 KB: a page after the first holds about PAGE_BYTES, not PAGE_EVENTS."""
    await fill(store, 40, per_second=5, content="y" * 100_000)
    pages = await collect(store, [Filter(limit=500)])
    assert sum(len(page) for page in pages) == 40
    assert all(sum(len(raw) for raw in page) <= PAGE_BYTES + 110_000 for page in pages[1:])


async def test_each_filter_gets_its_limit_and_each_event_comes_once(
    store: CountingStore,
) -> None:
    """Two overlapping filters: Alice's newest 120 and everyone's newest 150, sent once each."""
    await fill(store, 400, per_second=30)
    by_alice = Filter(authors=frozenset({ALICE.pubkey}), limit=120)
    everyone = Filter(limit=150)
    joined = ids([raw for page in await collect(store, [by_alice, everyone]) for raw in page])
    expected = set(ids(await store.query_raw([by_alice], NOW))) | set(
        ids(await store.query_raw([everyone], NOW))
    )
    assert len(joined) == len(set(joined)) and set(joined) == expected


async def test_several_filters_come_merged_newest_first(store: CountingStore) -> None:
    """R-P5: Alice's and Bob's events asked by two filters come as one answer, newest first
    (ties by lowest id), exactly as the store's one read orders them; pages stay bounded."""
    await fill(store, 400, per_second=30)
    by_alice = Filter(authors=frozenset({ALICE.pubkey}), limit=150)
    by_bob = Filter(authors=frozenset({BOB.pubkey}), limit=150)
    pages = await collect(store, [by_alice, by_bob])
    assert all(len(page) <= PAGE_EVENTS for page in pages)
    joined = [raw for page in pages for raw in page]
    assert ids(joined) == ids(await store.query_raw([by_alice, by_bob], NOW))
    times = [orjson.loads(raw)["created_at"] for raw in joined]
    assert times == sorted(times, reverse=True) and len(joined) == 300


async def test_the_next_page_is_read_only_when_asked(store: CountingStore) -> None:
    """After the first page one store read has happened; the rest wait for the caller."""
    await fill(store, 300, per_second=40)
    store.reads = 0
    pages = answer_pages(store, [Filter(limit=300)], NOW)
    first = await anext(pages)
    assert len(first) == FIRST_PAGE_EVENTS and store.reads == 1
    await anext(pages)
    assert store.reads == 2
    await pages.aclose()


async def test_each_store_read_is_observed(store: CountingStore) -> None:
    """Every page's read is timed for ``store_seconds{op="query"}``: one observation a read."""
    await fill(store, 300, per_second=40)
    store.reads = 0
    timings: list[float] = []
    pages = [p async for p in answer_pages(store, [Filter(limit=300)], NOW, timings.append)]
    assert len(pages) == 4 and len(timings) == store.reads == 4  # 20 + 100 + 100 + 80
    assert all(seconds >= 0 for seconds in timings)


def test_only_answers_over_a_page_are_paged() -> None:
    """A REQ of limit 10 (the common one) is answered in one read; 3 × 50 is paged, and so
    is a filter without a limit."""
    assert not is_large([Filter(limit=10)])
    assert is_large([Filter(limit=50)] * 3)
    assert is_large([replace(Filter(), limit=None)])
