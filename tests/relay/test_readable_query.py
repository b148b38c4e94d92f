"""relay.readable_query against the real SQLite store: a filter's limit counts only the
events the reader may read, and reading past refused ones is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.core.event import Event
from relay.core.filters import Filter
from relay.readable_query import query_readable
from relay.store.sqlite import SqliteStore
from tests.support.nostr import Keys

AUTHOR = Keys()
NOW = 1_700_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "relay.db")
    await s.open()
    yield s
    await s.close()


async def seed(store: SqliteStore, labels: list[str], *, same_second: bool = False) -> list[Event]:
    """Kind-1 notes with content ``labels`` (index 0 newest), stored."""
    events = [
        AUTHOR.sign(1, label, created_at=NOW if same_second else NOW - i)
        for i, label in enumerate(labels)
    ]
    for event in events:
        await store.save(event, NOW)
    return events


def mine(event: Event) -> bool:
    return event.content.startswith("mine")


async def test_limit_is_filled_with_readable_events_past_refused_ones(
    store: SqliteStore,
) -> None:
    """Eight newer refused events do not crowd out the three readable ones."""
    await seed(store, [*(f"other{i}" for i in range(8)), "mine0", "mine1", "mine2"])
    got = await query_readable(store, [(Filter(limit=2), [Filter(limit=2)])], NOW, mine)
    assert [e.content for e in got] == ["mine0", "mine1"]
    got = await query_readable(store, [(Filter(limit=5), [Filter(limit=5)])], NOW, mine)
    assert [e.content for e in got] == ["mine0", "mine1", "mine2"]


async def test_events_of_one_busy_second_are_read_past(store: SqliteStore) -> None:
    """Hundreds of refused events sharing one created_at second are paged through by id
    until the readable one is found."""
    await seed(store, [*(f"other{i}" for i in range(250)), "mine"], same_second=True)
    got = await query_readable(store, [(Filter(limit=1), [Filter(limit=1)])], NOW, mine)
    assert [e.content for e in got] == ["mine"]


async def test_reading_past_refused_events_is_bounded(store: SqliteStore) -> None:
    """Past the scan budget the answer is what was found, never an endless scan."""
    await seed(store, [*(f"other{i}" for i in range(300)), "mine"])
    plan = [(Filter(limit=1), [Filter(limit=1)])]
    assert await query_readable(store, plan, NOW, mine, scan_budget=100) == []
    got = await query_readable(store, plan, NOW, mine, scan_budget=1000)
    assert [e.content for e in got] == ["mine"]


async def test_sub_filters_are_capped_at_their_filters_limit(store: SqliteStore) -> None:
    """A filter split in two answers its own limit, newest first, across both halves."""
    events = await seed(store, ["mine0", "mine1", "mine2", "mine3"])
    even = Filter(ids=frozenset({events[0].id, events[2].id}), limit=3)
    odd = Filter(ids=frozenset({events[1].id, events[3].id}), limit=3)
    got = await query_readable(store, [(Filter(limit=3), [even, odd])], NOW, mine)
    assert [e.content for e in got] == ["mine0", "mine1", "mine2"]


async def test_all_readable_is_one_query_answered_as_the_store_gave_it(
    store: SqliteStore,
) -> None:
    """Nothing refused: the store's answer, unchanged; no sub-filters: nothing."""
    await seed(store, ["mine0", "mine1", "mine2"])
    plan = [(Filter(limit=2), [Filter(limit=2)])]
    assert [e.content for e in await query_readable(store, plan, NOW, mine)] == [
        "mine0",
        "mine1",
    ]
    assert await query_readable(store, [(Filter(limit=2), [])], NOW, mine) == []
