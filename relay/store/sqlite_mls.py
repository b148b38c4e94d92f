"""SQL for the MLS gateway state in the SQLite store; every function runs on the writer
(inside its transaction) or a reader thread, never on the event loop."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from relay.core.event import Event, event_from_raw
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection
from relay.mls import kinds
from relay.mls.groups import GroupState
from relay.mls.keypackages import StoredKeyPackage, evictions, plan_fetch
from relay.store.base import GroupTransition, KeyPackageSaved, MlsSweep, ServedKeyPackage
from relay.store.sqlite_events import delete_seqs, save_event


def delete_events_by_id(conn: sqlite3.Connection, event_ids: Sequence[str]) -> int:
    """Delete events (with their tags and key package rows); returns how many existed."""
    removed = 0
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        seqs = [r[0] for r in conn.execute(f"SELECT seq FROM events WHERE id IN ({marks})", chunk)]
        delete_seqs(conn, seqs)
        removed += len(seqs)
    return removed


def _owned(conn: sqlite3.Connection, owner: str, now: int) -> list[StoredKeyPackage]:
    rows = conn.execute(
        "SELECT k.event_id, k.created_at, k.expires_at, p.event_id IS NOT NULL"
        " FROM keypackages k LEFT JOIN pending_deletions p ON p.event_id = k.event_id"
        " WHERE k.owner = ? AND k.expires_at > ?",
        (owner, now),
    ).fetchall()
    return [StoredKeyPackage(r[0], owner, r[1], r[2], bool(r[3])) for r in rows]


def save_keypackage(
    conn: sqlite3.Connection,
    event: Event,
    *,
    expires_at: int,
    max_per_owner: int,
    grace: int,
    now: int,
) -> KeyPackageSaved:
    outcome = save_event(conn, event, expires_at=expires_at)
    if outcome is not Outcome.STORED:
        return KeyPackageSaved(outcome)
    conn.execute(
        "INSERT INTO keypackages (event_id, owner, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (event.id, event.pubkey, event.created_at, expires_at),
    )
    scheduled = conn.execute(
        "INSERT OR IGNORE INTO pending_deletions (event_id, due_at)"
        " SELECT event_id, ? FROM last_resort WHERE owner = ? AND event_id != ?",
        (now + grace, event.pubkey, event.id),
    ).rowcount
    conn.execute("DELETE FROM last_resort WHERE owner = ?", (event.pubkey,))
    live = [kp for kp in _owned(conn, event.pubkey, now) if not kp.pending_deletion]
    evicted = evictions(live, max_per_owner=max_per_owner)
    delete_events_by_id(conn, evicted)
    return KeyPackageSaved(Outcome.STORED, len(evicted), scheduled)


def take_keypackages(
    conn: sqlite3.Connection,
    authors: Sequence[str],
    *,
    per_author: int,
    consume: bool,
    now: int,
    where: Filter | None = None,
) -> list[ServedKeyPackage]:
    served: list[ServedKeyPackage] = []
    for author in dict.fromkeys(authors):
        rows = conn.execute(
            "SELECT k.event_id, k.created_at, k.expires_at, p.event_id IS NOT NULL, e.raw"
            " FROM keypackages k JOIN events e ON e.id = k.event_id"
            " LEFT JOIN pending_deletions p ON p.event_id = k.event_id"
            " WHERE k.owner = ? AND k.expires_at > ?",
            (author, now),
        ).fetchall()
        events = {r[0]: event_from_raw(r[4]) for r in rows}
        owned = [StoredKeyPackage(r[0], author, r[1], r[2], bool(r[3])) for r in rows]
        matching = None if where is None else {i for i, e in events.items() if where.matches(e)}
        plan = plan_fetch(owned, per_author=per_author, now=now, consume=consume, matching=matching)
        consumed = set(plan.consume)
        served += [ServedKeyPackage(events[i], i in consumed) for i in plan.serve]
        delete_events_by_id(conn, plan.consume)
        if plan.last_resort is not None and consume:
            conn.execute(
                "INSERT OR IGNORE INTO last_resort (event_id, owner) VALUES (?, ?)",
                (plan.last_resort, author),
            )
    return served


def load_group(conn: sqlite3.Connection, group_id: str) -> GroupState | None:
    row = conn.execute("SELECT state FROM groups WHERE group_id = ?", (group_id,)).fetchone()
    return GroupState.from_json(orjson.loads(row[0])) if row else None


def save_group_event(
    conn: sqlite3.Connection, event: Event, transition: GroupTransition, now: int
) -> tuple[Outcome | Rejection, GroupState | None]:
    group_id = event.first_tag_value("h") or ""
    before = load_group(conn, group_id) if group_id else None
    after = transition(before)
    if isinstance(after, Rejection):
        return after, None
    outcome = save_event(conn, event)
    if outcome is not Outcome.STORED or after is None or after == before:
        return outcome, None
    conn.execute(
        "INSERT INTO groups (group_id, state, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (group_id) DO UPDATE SET state = excluded.state,"
        " updated_at = excluded.updated_at",
        (after.group_id, orjson.dumps(after.to_json()), now),
    )
    return outcome, after


def load_groups(conn: sqlite3.Connection) -> list[GroupState]:
    return [
        GroupState.from_json(orjson.loads(r[0])) for r in conn.execute("SELECT state FROM groups")
    ]


def sweep(conn: sqlite3.Connection, now: int, archive_before: int) -> MlsSweep:
    due = [
        r[0]
        for r in conn.execute("SELECT event_id FROM pending_deletions WHERE due_at <= ?", (now,))
    ]
    last_resort = delete_events_by_id(conn, due)
    conn.execute("DELETE FROM pending_deletions WHERE due_at <= ?", (now,))
    expired = [
        r[0] for r in conn.execute("SELECT event_id FROM keypackages WHERE expires_at <= ?", (now,))
    ]
    expired_count = delete_events_by_id(conn, expired)
    marks = ",".join(str(k) for k in sorted(kinds.ARCHIVED))
    old = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM events WHERE kind IN ({marks}) AND created_at < ?", (archive_before,)
        )
    ]
    archived = delete_events_by_id(conn, old)
    return MlsSweep(archived, expired_count, last_resort)
