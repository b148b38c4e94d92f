"""relay.store.sqlite_mls: the MLS gateway state in the SQLite store (R-M1b, R-M3…R-M10)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.mls.groups import GroupState
from relay.store.sqlite import SqliteStore
from tests.support.nostr import Keys

ALICE, BOB, CAROL = (Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33"))
NOW = 1_700_000_000
TTL = 7 * 86400
GRACE = 600
DAY = 86400


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "relay.db")
    await s.open()
    yield s
    await s.close()


def keypackage(keys: Keys = ALICE, age: int = 0, n: int = 0) -> Event:
    """A 443 created ``age`` seconds before NOW (``n`` makes it unique)."""
    return keys.sign(443, f"{n:04x}", [], created_at=NOW - age)


async def save_kp(
    store: SqliteStore, event: Event, *, max_per_owner: int = 15, now: int = NOW
) -> tuple[Outcome, int, int]:
    saved = await store.save_keypackage(
        event, expires_at=now + TTL, max_per_owner=max_per_owner, grace=GRACE, now=now
    )
    return saved.outcome, saved.evicted, saved.last_resort_scheduled


async def take(
    store: SqliteStore, *authors: Keys, per_author: int = 1, now: int = NOW
) -> list[tuple[str, bool]]:
    served = await store.take_keypackages(
        [a.pubkey for a in authors], per_author=per_author, consume=True, now=now
    )
    return [(s.event.id, s.consumed) for s in served]


async def stored_ids(store: SqliteStore, *kinds: int, now: int = NOW) -> set[str]:
    return {e.id for e in await store.query([Filter(kinds=frozenset(kinds))], now)}


def group_msg(group: str = "g1") -> Event:
    return CAROL.sign(445, "ciphertext", [["h", group]], created_at=NOW)


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
