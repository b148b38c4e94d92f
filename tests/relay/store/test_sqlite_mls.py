"""relay.store.sqlite_mls: the MLS gateway state in the SQLite store (R-M1b, R-M3…R-M10)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.mls.groups import GroupState
from relay.store.sqlite import SqliteStore
from tests.relay.store.test_contract_mls import (
    ALICE,
    BOB,
    GRACE,
    NOW,
    TTL,
    group_msg,
    keypackage,
    save_kp,
    stored_ids,
    take,
)

# The keys, clock and helpers are the contract suite's, so both suites build the same events.


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "relay.db")
    await s.open()
    yield s
    await s.close()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# --- save_keypackage -----------------------------------------------------------------------


async def test_fresh_keypackages_schedule_the_served_last_resort_for_deletion_bookkeeping(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Once the last one was served as a last resort, publishing fresh ones schedules its
    deletion at now + grace; meanwhile only fresh ones are served."""
    last = keypackage(age=100, n=1)
    await save_kp(store, last)
    assert await take(store, ALICE) == [(last.id, False)]
    fresh = keypackage(age=1, n=2)
    assert (await save_kp(store, fresh))[2] == 1
    assert rows(tmp_path / "relay.db", "SELECT event_id, due_at FROM pending_deletions") == [
        (last.id, NOW + GRACE)
    ]
    assert await take(store, ALICE) == [(fresh.id, False)]


async def test_sweep_deletes_expired_keypackages_bookkeeping(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Key packages past their expiry are removed with their bookkeeping."""
    short, long = keypackage(n=1), keypackage(n=2)
    await store.save_keypackage(short, expires_at=NOW + 10, max_per_owner=15, grace=0, now=NOW)
    await store.save_keypackage(long, expires_at=NOW + TTL, max_per_owner=15, grace=0, now=NOW)
    result = await store.sweep_mls(NOW + 10, 0)
    assert result.keypackages_expired == 1
    assert await stored_ids(store, 443, now=NOW) == {long.id}
    assert rows(tmp_path / "relay.db", "SELECT event_id FROM keypackages") == [(long.id,)]


async def test_sweep_executes_due_last_resort_deletions_and_clears_them(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Before now + grace the last resort stays; from then on the sweep deletes it."""
    last, fresh = keypackage(age=100, n=1), keypackage(age=1, n=2)
    await save_kp(store, last)
    await take(store, ALICE)
    await save_kp(store, fresh)
    assert (await store.sweep_mls(NOW + GRACE - 1, 0)).last_resort_deleted == 0
    assert await stored_ids(store, 443) == {last.id, fresh.id}
    assert (await store.sweep_mls(NOW + GRACE, 0)).last_resort_deleted == 1
    assert await stored_ids(store, 443) == {fresh.id}
    assert rows(tmp_path / "relay.db", "SELECT * FROM pending_deletions") == []


async def test_consumed_last_resort_leaves_no_pending_deletion(
    store: SqliteStore, tmp_path: Path
) -> None:
    """A pending last resort that gets consumed is cleaned from the bookkeeping."""
    last = keypackage(age=100, n=1)
    await save_kp(store, last)
    await take(store, ALICE)
    await save_kp(store, keypackage(age=2, n=2))
    await save_kp(store, keypackage(age=1, n=3))
    await store.sweep_mls(NOW + GRACE, 0)
    assert rows(tmp_path / "relay.db", "SELECT * FROM pending_deletions") == []
    assert rows(tmp_path / "relay.db", "SELECT * FROM last_resort") == []


async def test_mls_state_survives_close_and_reopen(tmp_path: Path) -> None:
    """Groups, key packages and pending deletions are on disk (R-M10)."""
    path = tmp_path / "relay.db"
    first = SqliteStore(path)
    await first.open()
    state = GroupState("g1", owner=ALICE.pubkey, members=frozenset({BOB.pubkey}), last_seq=3)
    await first.save_group_event(group_msg(), lambda before: state, NOW)
    last, fresh = keypackage(age=100, n=1), keypackage(age=1, n=2)
    await save_kp(first, last)
    await take(first, ALICE)
    await save_kp(first, fresh)
    await first.close()

    second = SqliteStore(path)
    await second.open()
    try:
        assert await second.load_groups() == [state]
        assert await take(second, ALICE) == [(fresh.id, False)]
        assert (await second.sweep_mls(NOW + GRACE, 0)).last_resort_deleted == 1
        assert await stored_ids(second, 443) == {fresh.id}
    finally:
        await second.close()
