"""relay.store.sqlite: the embedded event store on a real SQLite file (R-S1, R-P4)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.core.event import Event
from relay.core.filters import Filter, parse_filter
from relay.core.outcome import Outcome
from relay.store.base import StoreUnavailable
from relay.store.migrations import MIGRATIONS
from relay.store.sqlite import SqliteStore
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "relay.db")
    await s.open()
    yield s
    await s.close()


def f(**fields: Any) -> Filter:
    parsed = parse_filter(fields)
    assert isinstance(parsed, Filter)
    return parsed


def ev(keys: Keys = ALICE, kind: int = 1, created_at: int = NOW, **kwargs: Any) -> Event:
    return keys.sign(kind, kwargs.get("content", ""), kwargs.get("tags"), created_at=created_at)


async def ids(store: SqliteStore, *filters: Filter, now: int = NOW) -> list[str]:
    return [e.id for e in await store.query(filters or (Filter(),), now)]


def deletion(keys: Keys, *tags: list[str], created_at: int = NOW) -> Event:
    return keys.sign(5, "", list(tags), created_at=created_at)


def with_lower_id_first(make: Any) -> tuple[Event, Event]:
    """Two distinct events from ``make(i)``, ordered so the first has the lower id."""
    a, b = make(0), make(1)
    return (a, b) if a.id < b.id else (b, a)


# --- regular events, ordering, limits ---------------------------------------------------------


async def test_ok_means_committed_visible_to_another_connection(
    store: SqliteStore, tmp_path: Path
) -> None:
    """When save returns, the event is in the file for any other reader (R-P3)."""
    event = ev()
    await store.save(event, NOW)
    with sqlite3.connect(tmp_path / "relay.db") as other:
        rows = other.execute("SELECT id FROM events").fetchall()
    assert rows == [(event.id,)]


async def test_swept_expired_events_leave_no_rows_behind(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Past its ``expiration`` an event is neither queried nor counted; the sweep deletes it."""
    expiring = ev(tags=[["expiration", str(NOW + 10)]], content="e")
    lasting = ev(content="l")
    await store.save(expiring, NOW)
    await store.save(lasting, NOW)
    assert set(await ids(store, now=NOW + 9)) == {expiring.id, lasting.id}
    assert await ids(store, now=NOW + 10) == [lasting.id]
    assert await store.count([Filter()], NOW + 10) == 1
    assert await store.delete_expired(NOW + 9) == 0
    assert await store.delete_expired(NOW + 10) == 1
    assert await store.delete_expired(NOW + 10) == 0
    with sqlite3.connect(tmp_path / "relay.db") as other:
        assert other.execute("SELECT id FROM events").fetchall() == [(lasting.id,)]
        assert other.execute("SELECT COUNT(*) FROM tags").fetchone() == (0,)


async def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    """Every numbered migration is applied and recorded; reopening applies nothing again."""
    path = tmp_path / "relay.db"
    for _ in range(2):
        s = SqliteStore(path)
        await s.open()
        await s.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()
    assert rows == [(version, name) for version, name, _ in MIGRATIONS]
    assert mode == ("wal",)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    """Events, replacements and deletion blocks persist across a restart."""
    path = tmp_path / "data" / "relay.db"
    kept, deleted = ev(content="kept"), ev(content="deleted")
    first = SqliteStore(path)
    await first.open()
    for event in (kept, deleted, deletion(ALICE, ["e", deleted.id])):
        await first.save(event, NOW)
    await first.close()
    second = SqliteStore(path)
    await second.open()
    try:
        assert await ids(second, f(kinds=[1])) == [kept.id]
        assert await second.save(deleted, NOW) is Outcome.DELETED
        assert await second.save(kept, NOW) is Outcome.DUPLICATE
    finally:
        await second.close()


async def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    """Every operation on a store that is not open raises StoreUnavailable."""
    s = SqliteStore(tmp_path / "relay.db")
    with pytest.raises(StoreUnavailable):
        await s.save(ev(), NOW)
    with pytest.raises(StoreUnavailable):
        await s.query([Filter()], NOW)
    with pytest.raises(StoreUnavailable):
        await s.health()


async def test_an_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    """A database path that cannot be created raises StoreUnavailable, not sqlite3 errors."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = SqliteStore(tmp_path / "file" / "dir" / "relay.db")
    with pytest.raises(StoreUnavailable):
        await s.open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable):
        await SqliteStore(garbage).open()


async def test_a_full_disk_fails_writes_after_retries_and_health_reports_it(
    store: SqliteStore,
) -> None:
    """SQLITE_FULL (a real SQLite error, via max_page_count) is retried, then raised as
    StoreUnavailable; /health's check fails until a write commits again (R-S3)."""
    assert await store.save(ev(content="before"), NOW) is Outcome.STORED
    pages = await store._write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await store._write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}").fetchone())
    big = ev(content="x" * 200_000)
    with pytest.raises(StoreUnavailable, match="full"):
        await store.save(big, NOW)
    with pytest.raises(StoreUnavailable, match="writes failing"):
        await store.health()
    await store._write(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
    assert await store.save(big, NOW) is Outcome.STORED
    await store.health()


async def test_a_write_check_that_commits_clears_the_writers_failure(
    store: SqliteStore,
) -> None:
    """After a failed write, a write check through the writer commits (a header page
    written, no row changed) and clears the writer's failure: health() passes with no
    client write, and the data is as before."""
    assert await store.save(ev(content="before"), NOW) is Outcome.STORED
    pages = await store._write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await store._write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}").fetchone())
    with pytest.raises(StoreUnavailable, match="full"):
        await store.save(ev(content="x" * 200_000), NOW)
    assert store._writer is not None and store._writer.failing is not None
    await store._write(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
    store._writer.failing = "database or disk is full"  # as the failed save left it
    other = sqlite3.connect(store.path, isolation_level=None)
    version = other.execute("PRAGMA data_version").fetchone()[0]
    await store.check_write()
    # A commit that wrote (an empty transaction leaves data_version as it was).
    assert other.execute("PRAGMA data_version").fetchone()[0] != version
    other.close()
    assert store._writer.failing is None
    await store.health()
    assert [e.content for e in await store.query([Filter()], NOW)] == ["before"]


async def test_a_write_check_that_cannot_commit_is_unavailable_and_keeps_health_failing(
    store: SqliteStore,
) -> None:
    """Another connection holds the write lock: the write check fails like a client write
    (StoreUnavailable naming SQLite's error) and health() keeps reporting it."""
    await store._write(lambda c: c.execute("PRAGMA busy_timeout = 0").fetchone())
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.check_write()
        with pytest.raises(StoreUnavailable, match="writes failing: database is locked"):
            await store.health()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await store.check_write()
    await store.health()


# --- durability and checkpoints (issue 13) ----------------------------------------------------


@pytest.mark.parametrize(("synchronous", "pragma"), [("normal", 1), ("full", 2)])
async def test_synchronous_setting_is_the_write_connections_pragma(
    tmp_path: Path, synchronous: str, pragma: int
) -> None:
    """``data.synchronous = "full"`` makes the writer sync every commit (PRAGMA
    synchronous = FULL, survives power loss); ``normal`` syncs at checkpoints only."""
    s = SqliteStore(tmp_path / "relay.db", synchronous=synchronous)
    await s.open()
    try:
        assert await s._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == pragma
        assert await s._write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
    finally:
        await s.close()


def wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number: how often the WAL started over."""
    header = path.with_name(path.name + "-wal").read_bytes()[:16]
    return int.from_bytes(header[12:16], "big")


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_checkpoints_keep_the_wal_bounded_while_writes_continue(tmp_path: Path) -> None:
    """The writer never checkpoints, yet the checkpointer thread copies the WAL into the
    database while writes go on, so the WAL is reused instead of holding every write."""
    path = tmp_path / "relay.db"
    s = SqliteStore(path)
    await s.open()
    checkpointer = s._checkpointer
    assert checkpointer is not None
    largest = 0
    try:
        for batch in range(25):
            events = [ev(content=f"{batch}-{i}", tags=[["t", str(i)]]) for i in range(100)]
            await asyncio.gather(*(s.save(e, NOW) for e in events))
            assert await asyncio.to_thread(checkpointer.wait_covered, checkpointer.commits, 30)
            largest = max(largest, wal_size(path))
        # Without checkpoints the WAL would hold every page written: more than the database.
        assert largest < path.stat().st_size / 2
        assert await s.count([Filter()], NOW) == 2500
    finally:
        await s.close()


async def test_the_wal_starts_over_under_writes_that_never_pause(tmp_path: Path) -> None:
    """With a write always in flight a checkpoint on another connection never catches
    up; the writer finishes it between batches, so the WAL starts over again and again
    instead of growing with every write."""
    path = tmp_path / "relay.db"
    s = SqliteStore(path)
    await s.open()
    checkpointer = s._checkpointer
    assert checkpointer is not None
    checkpointer.reset = 100  # frames: ask the writer early, so the test stays small
    checkpointer.period = 0.01
    batches = [
        [ev(content=f"{batch}-{i}", tags=[["t", str(i)]]) for i in range(50)]
        for batch in range(160)
    ]
    in_flight: list[asyncio.Future[list[Any]]] = []
    try:
        for events in batches:  # signed beforehand: the writer never waits for the test
            if checkpointer.passes >= 10:
                break
            in_flight.append(asyncio.ensure_future(s.save_many(events, NOW)))
            if len(in_flight) > 3:
                assert set(await in_flight.pop(0)) == {Outcome.STORED}
        for pending in in_flight:
            assert set(await pending) == {Outcome.STORED}
        assert checkpointer.passes >= 10
        assert wal_restarts(path) >= 3  # none at all without the writer's help
    finally:
        await s.close()


async def test_the_wal_is_truncated_once_writes_pause_and_data_survives_reopen(
    tmp_path: Path,
) -> None:
    """After writes stop the WAL is emptied into the database file; every committed event
    is there after a restart."""
    path = tmp_path / "relay.db"
    s = SqliteStore(path)
    await s.open()
    events = [ev(content=str(i)) for i in range(300)]
    try:
        await asyncio.gather(*(s.save(e, NOW) for e in events))
        assert s._checkpointer is not None
        assert await asyncio.to_thread(s._checkpointer.truncated.wait, 30)
        assert wal_size(path) == 0
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT COUNT(*) FROM events").fetchone() == (300,)
    finally:
        await s.close()
    again = SqliteStore(path)
    await again.open()
    try:
        assert set(await ids(again, f(limit=1000))) == {e.id for e in events}
    finally:
        await again.close()


# --- answers on the event loop (query_raw_now) ------------------------------------------------


async def test_a_small_query_is_answered_at_once_with_the_stored_json(store: SqliteStore) -> None:
    """A 10-event REQ is read on the caller's thread: the same bytes as query_raw."""
    events = [ev(created_at=NOW - i, content=str(i)) for i in range(20)]
    for event in events:
        await store.save(event, NOW)
    filters = [f(authors=[ALICE.pubkey], kinds=[1], limit=10)]
    now = store.query_raw_now(filters, NOW)
    assert now == [e.raw for e in events[:10]] == await store.query_raw(filters, NOW)


async def test_a_large_answer_is_left_to_the_reader_threads(store: SqliteStore) -> None:
    """Filters asking for hundreds of events (or no limit) answer None at once; the
    awaited query answers them in full."""
    events = [ev(created_at=NOW - i, content=str(i)) for i in range(300)]
    await asyncio.gather(*(store.save(e, NOW) for e in events))
    for filters, found in (
        ([f(kinds=[1])], 300),
        ([f(kinds=[1], limit=300)], 300),
        ([f(kinds=[1], limit=150), f(authors=[ALICE.pubkey], limit=151)], 151),
    ):
        assert store.query_raw_now(filters, NOW) is None
        assert len(await store.query_raw(filters, NOW)) == found
    assert store.query_raw_now([f(kinds=[1], limit=200)], NOW) == [e.raw for e in events[:200]]


async def test_a_query_scanning_past_the_step_budget_is_left_to_the_reader_threads(
    store: SqliteStore,
) -> None:
    """A small REQ that must skip many rows (here: expired events) is interrupted and
    answers None, not a partial answer; the awaited query answers it; the next small
    query is immediate again."""
    expiring = [
        ev(created_at=NOW - i, content=str(i), tags=[["expiration", str(NOW + 10)]])
        for i in range(1000)
    ]
    for start in range(0, len(expiring), 250):
        await asyncio.gather(*(store.save(e, NOW) for e in expiring[start : start + 250]))
    kept = ev(created_at=NOW - 5000, content="kept")
    await store.save(kept, NOW)
    later = NOW + 100
    assert store.query_raw_now([f(kinds=[1], limit=10)], later) is None
    assert await store.query_raw([f(kinds=[1], limit=10)], later) == [kept.raw]
    assert store.query_raw_now([f(ids=[kept.id], limit=10)], later) == [kept.raw]


async def test_no_immediate_answers_from_a_closed_store(tmp_path: Path) -> None:
    """Before open and after close the immediate read answers None."""
    s = SqliteStore(tmp_path / "relay.db")
    assert s.query_raw_now([f(limit=10)], NOW) is None
    await s.open()
    assert s.query_raw_now([f(limit=10)], NOW) == []
    await s.close()
    assert s.query_raw_now([f(limit=10)], NOW) is None


async def test_save_many_keeps_each_events_place_among_replacements_and_deletions(
    store: SqliteStore,
) -> None:
    """Plain events are saved together, replaceable events and deletions alone, in the
    order sent: a deletion removes an event saved just before it in the same call, and
    that event sent again after it stays deleted."""
    note, other = ev(content="note"), ev(content="other")
    profile = ev(kind=0, content="profile")
    gone = deletion(ALICE, ["e", note.id])
    results = await store.save_many([note, other, gone, profile, note, ev(content="last")], NOW)
    assert results == [Outcome.STORED] * 4 + [Outcome.DELETED, Outcome.STORED]
    assert note.id not in await ids(store)
    assert set(await ids(store, f(kinds=[0]))) == {profile.id}
    assert len(await ids(store, f(kinds=[1]))) == 2


async def test_a_failing_event_in_a_saved_run_fails_alone(store: SqliteStore) -> None:
    """When the database refuses one event of a run saved together, that event gets
    StoreUnavailable and every other event of the run is stored."""
    events = [ev(content=f"run {i}", tags=[["t", "batch"]]) for i in range(6)]
    bad = events[3]
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON events"
            f" WHEN NEW.id = '{bad.id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    results = await store.save_many(events, NOW)
    assert isinstance(results[3], StoreUnavailable) and "refused" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [Outcome.STORED] * 5
    assert set(await ids(store, f(**{"#t": ["batch"]}))) == {e.id for e in events} - {bad.id}


async def test_save_many_calls_in_one_commit_answer_as_if_saved_in_turn(
    store: SqliteStore,
) -> None:
    """Several connections' batches sharing a writer transaction are saved together:
    an event in two of them is stored once and a duplicate in the other."""
    shared = ev(content="in both")
    batches = [
        [ev(content=f"{n}-{i}", tags=[["t", "many"]]) for i in range(4)] + [shared]
        for n in range(5)
    ]
    results = await asyncio.gather(*(store.save_many(batch, NOW) for batch in batches))
    assert all(r[:4] == [Outcome.STORED] * 4 for r in results)
    assert [r[4] for r in results].count(Outcome.STORED) == 1
    assert [r[4] for r in results].count(Outcome.DUPLICATE) == 4
    assert len(await ids(store, f(**{"#t": ["many"]}))) == 20
