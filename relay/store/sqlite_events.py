"""SQL for events in the SQLite store (NIP-01 storage, NIP-09 deletions, NIP-40 expiry).

Every function runs on the store's writer thread (inside its transaction) or on a
reader thread; only :func:`query_raw` also runs on the event loop, under a VM-step budget
(``SqliteStore.query_raw_now``). Plain events pipelined together are saved set-based
(:func:`save_plain_events`), with the outcomes :func:`save_event` would give each.
A read binds one SQL variable per value its filters list; one that would pass SQLite's
limit on variables is split into statements that fit (:func:`_fitting`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.replacement import (
    DELETION_KIND,
    Deletion,
    Version,
    coordinate_of,
    deletes_event,
    deletion_of,
    plan_replacement,
)


def delete_seqs(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    """Delete events by row id, with their tags and any key package bookkeeping."""
    for start in range(0, len(seqs), 500):
        chunk = list(seqs[start : start + 500])
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM tags WHERE event_seq IN ({marks})", chunk)
        for table in ("keypackages", "last_resort", "pending_deletions"):
            conn.execute(
                f"DELETE FROM {table} WHERE event_id IN"
                f" (SELECT id FROM events WHERE seq IN ({marks}) AND kind = 443)",
                chunk,
            )
        conn.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)


def save_event(conn: sqlite3.Connection, event: Event, *, expires_at: int | None = None) -> Outcome:
    """Insert ``event`` with NIP-01/09/40 semantics (see ``EventStore.save``).

    ``expires_at`` overrides the NIP-40 expiration (key packages carry their own).
    """
    if conn.execute("SELECT 1 FROM events WHERE id = ?", (event.id,)).fetchone():
        return Outcome.DUPLICATE
    if conn.execute(
        "SELECT 1 FROM deletions WHERE event_id = ? AND pubkey = ?", (event.id, event.pubkey)
    ).fetchone():
        return Outcome.DELETED
    coordinate = coordinate_of(event)
    if coordinate is not None:
        row = conn.execute(
            "SELECT until FROM deleted_coords WHERE kind = ? AND pubkey = ? AND d_tag = ?",
            (coordinate.kind, coordinate.pubkey, coordinate.d_tag),
        ).fetchone()
        stored = conn.execute(
            "SELECT seq, id, created_at FROM events WHERE pubkey = ? AND kind = ? AND d_tag = ?",
            (coordinate.pubkey, coordinate.kind, coordinate.d_tag),
        ).fetchall()
        plan = plan_replacement(
            event, [Version(r[1], r[2]) for r in stored], row[0] if row else None
        )
        if plan.refused is not None:
            return plan.refused
        delete_seqs(conn, [r[0] for r in stored if r[1] in plan.replaced])
    cursor = conn.execute(
        "INSERT INTO events (id, pubkey, created_at, kind, d_tag, expires_at, raw)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            event.id,
            event.pubkey,
            event.created_at,
            event.kind,
            None if coordinate is None else coordinate.d_tag,
            event.expiration if expires_at is None else expires_at,
            event.raw,
        ),
    )
    seq = cursor.lastrowid
    tag_rows = [
        (seq, t[0], t[1], event.created_at) for t in event.tags if len(t) > 1 and len(t[0]) == 1
    ]
    if tag_rows:
        conn.executemany(
            "INSERT INTO tags (event_seq, name, value, created_at) VALUES (?, ?, ?, ?)", tag_rows
        )
    deletion = deletion_of(event)
    if deletion is not None:
        _apply_deletion(conn, deletion)
    return Outcome.STORED


def is_plain(event: Event) -> bool:
    """True when saving ``event`` only inserts it (no replacement, no deletion), so
    :func:`save_plain_events` may store it together with others."""
    return event.kind != DELETION_KIND and coordinate_of(event) is None


# A run is saved in a few statements, each one step of SQLite: the writer thread goes
# back for the GIL a few times per run instead of once per row (under pipelined load
# each of those waits for the event loop to let go of it). The ids to look up travel as
# one JSON array; the rows go in as multi-row VALUES (one statement per _VALUES_ROWS
# rows), so SQLite parses no JSON per row. Each row count has its own statement text:
# the writer's connection caches them all (STATEMENT_CACHE_SIZE).
_KNOWN = (
    "SELECT id, NULL FROM events WHERE id IN (SELECT value FROM json_each(?1))"
    " UNION ALL SELECT event_id, pubkey FROM deletions"
    " WHERE event_id IN (SELECT value FROM json_each(?1))"
)
# Only ints, floats, strs and bytearrays are bound as they are: any other value (bytes, None)
# first goes through the sqlite3 module's adapter lookup, which costs the writer about
# a microsecond per value while it holds the GIL. So the raw JSON goes as a bytearray
# (still a BLOB), a missing expiration as -1 (NULL again in SQL), and d_tag is left out
# (NULL: plain events have no coordinate).
_INSERT_EVENTS = (
    "INSERT INTO events (seq, id, pubkey, created_at, kind, expires_at, raw)",
    "(?,?,?,?,?,NULLIF(?,-1),?)",
)
_INSERT_TAGS = ("INSERT INTO tags (event_seq, name, value, created_at)", "(?,?,?,?)")
# 64 rows of 7 values stay under the 999 parameters of SQLite before 3.32.
_VALUES_ROWS = 64


def save_plain_events(conn: sqlite3.Connection, events: Sequence[Event]) -> list[Outcome]:
    """:func:`save_event` of each of ``events`` in order, all of them plain
    (:func:`is_plain`), in a few statements: two lookups, then one insert of events and
    one of tags per :data:`_VALUES_ROWS` rows.

    The outcomes are those of saving them one by one: an id already stored, or earlier
    in ``events``, is a duplicate; an id its author deleted stays deleted. Needs
    SQLite's JSON functions (:func:`has_json`).
    """
    ids = orjson.dumps(list({event.id: None for event in events}))
    stored: set[str] = set()
    deleted: set[tuple[str, str]] = set()
    for event_id, deleted_by in conn.execute(_KNOWN, (ids,)):
        if deleted_by is None:
            stored.add(event_id)
        else:
            deleted.add((event_id, deleted_by))
    # Row ids are given here, as SQLite would (one past the largest): the writer's
    # transaction holds the write lock, so nothing else takes them meanwhile.
    (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    outcomes: list[Outcome] = []
    event_values: list[Any] = []
    tag_values: list[Any] = []
    for event in events:
        if event.id in stored:
            outcomes.append(Outcome.DUPLICATE)
            continue
        if (event.id, event.pubkey) in deleted:
            outcomes.append(Outcome.DELETED)
            continue
        stored.add(event.id)
        seq += 1
        created_at = event.created_at
        expiration = event.expiration
        event_values += (
            seq,
            event.id,
            event.pubkey,
            created_at,
            event.kind,
            -1 if expiration is None else expiration,
            bytearray(event.raw),
        )
        for tag in event.tags:
            if len(tag) > 1 and len(tag[0]) == 1:
                tag_values += (seq, tag[0], tag[1], created_at)
        outcomes.append(Outcome.STORED)
    _insert_values(conn, _INSERT_EVENTS, 7, event_values)
    _insert_values(conn, _INSERT_TAGS, 4, tag_values)
    return outcomes


def _insert_values(
    conn: sqlite3.Connection, insert: tuple[str, str], width: int, values: list[Any]
) -> None:
    """Run ``insert`` (the statement and its row of ``width`` parameters) for the rows of
    ``width`` consecutive ``values`` each, in order, as multi-row VALUES statements of at
    most :data:`_VALUES_ROWS` rows."""
    rows = len(values) // width
    for start in range(0, rows, _VALUES_ROWS):
        size = min(_VALUES_ROWS, rows - start)
        conn.execute(_values_sql(insert, size), values[start * width : (start + size) * width])


@functools.lru_cache(maxsize=2 * _VALUES_ROWS)
def _values_sql(insert: tuple[str, str], rows: int) -> str:
    statement, row = insert
    return f"{statement} VALUES {','.join([row] * rows)}"


def has_json(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has the JSON functions :func:`save_plain_events` uses."""
    try:
        conn.execute("SELECT value FROM json_each('[1]')").fetchall()
    except sqlite3.OperationalError:
        return False
    return True


def _apply_deletion(conn: sqlite3.Connection, deletion: Deletion) -> None:
    """NIP-09: remove the author's referenced events (never other deletions) and
    remember them so they cannot be published again."""
    for target in deletion.event_ids:
        conn.execute(
            "INSERT OR IGNORE INTO deletions (event_id, pubkey) VALUES (?, ?)",
            (target, deletion.pubkey),
        )
        rows = conn.execute("SELECT seq, pubkey, kind FROM events WHERE id = ?", (target,))
        delete_seqs(
            conn,
            [r[0] for r in rows.fetchall() if deletes_event(deletion, pubkey=r[1], kind=r[2])],
        )
    for c in deletion.coordinates:
        conn.execute(
            "INSERT INTO deleted_coords (kind, pubkey, d_tag, until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, pubkey, d_tag) DO UPDATE SET until = MAX(until, excluded.until)",
            (c.kind, c.pubkey, c.d_tag, deletion.until),
        )
        rows = conn.execute(
            "SELECT seq FROM events WHERE kind = ? AND pubkey = ? AND d_tag = ?"
            " AND created_at <= ?",
            (c.kind, c.pubkey, c.d_tag, deletion.until),
        )
        delete_seqs(conn, [r[0] for r in rows.fetchall()])


_Shape = tuple[int, int, int, bool, bool, tuple[tuple[str, int], ...]]


def _shape(f: Filter) -> _Shape:
    """What the SQL of ``f`` depends on: how many values each field lists (-1: absent)."""
    return (
        -1 if f.ids is None else len(f.ids),
        -1 if f.authors is None else len(f.authors),
        -1 if f.kinds is None else len(f.kinds),
        f.since is not None,
        f.until is not None,
        tuple((name, len(values)) for name, values in f.tags),
    )


@functools.lru_cache(maxsize=1024)
def _where_sql(shape: _Shape) -> str:
    # Cached: REQs repeat a few shapes, and building the text cost more than running
    # a small indexed query.
    ids, authors, kinds, since, until, tags = shape
    clauses = ["(expires_at IS NULL OR expires_at > ?)"]
    for column, count in (("id", ids), ("pubkey", authors), ("kind", kinds)):
        if count >= 0:
            clauses.append(f"{column} IN ({','.join('?' * count)})")
    if since:
        clauses.append("created_at >= ?")
    if until:
        clauses.append("created_at <= ?")
    for _, count in tags:
        clauses.append(
            "seq IN (SELECT event_seq FROM tags WHERE name = ? AND value IN "
            f"({','.join('?' * count)}))"
        )
    return " AND ".join(clauses)


def _where(f: Filter, now: int) -> tuple[str, list[Any]]:
    """The WHERE clause of ``f`` (unexpired events only) and its parameters."""
    params: list[Any] = [now]
    for values in (f.ids, f.authors, f.kinds):
        if values is not None:
            params.extend(sorted(values) if len(values) > 1 else values)
    if f.since is not None:
        params.append(f.since)
    if f.until is not None:
        params.append(f.until)
    for name, values in f.tags:
        params.append(name)
        params.extend(sorted(values))
    return _where_sql(_shape(f)), params


def _variables(f: Filter) -> int:
    """How many SQL variables the statement of ``f`` binds at most (see :func:`_select`)."""
    fixed = 1 + (f.since is not None) + (f.until is not None) + (f.limit is not None)
    return fixed + f.value_count + len(f.tags)


def _fitting(f: Filter, most: int) -> list[Filter]:
    """Filters whose union matches exactly what ``f`` matches (its limit aside), each
    binding at most ``most`` SQL variables: ``f`` itself when it fits, else ``f`` with
    its longest list of values split in halves, as often as needed."""
    if _variables(f) <= most:
        return [f]
    halves = _halves(f)
    if halves is None:
        return [f]  # nothing left to split: SQLite then says what is wrong
    return [part for half in halves for part in _fitting(half, most)]


def _halves(f: Filter) -> list[Filter] | None:
    """``f`` twice, each with half of its longest list of values (None: no list has
    two values). The two together match what ``f`` matches."""
    longest = max(
        [len(values) for _, values in f.tags]
        + [len(field) for field in (f.ids, f.authors, f.kinds) if field is not None],
        default=0,
    )
    if longest < 2:
        return None

    def split(values: frozenset[Any]) -> tuple[frozenset[Any], frozenset[Any]]:
        listed = list(values)
        return frozenset(listed[: len(listed) // 2]), frozenset(listed[len(listed) // 2 :])

    if f.ids is not None and len(f.ids) == longest:
        return [replace(f, ids=half) for half in split(f.ids)]
    if f.authors is not None and len(f.authors) == longest:
        return [replace(f, authors=half) for half in split(f.authors)]
    if f.kinds is not None and len(f.kinds) == longest:
        return [replace(f, kinds=half) for half in split(f.kinds)]
    at = next(i for i, (_, values) in enumerate(f.tags) if len(values) == longest)
    name, values = f.tags[at]
    return [
        replace(f, tags=(*f.tags[:at], (name, half), *f.tags[at + 1 :])) for half in split(values)
    ]


def _variable_limit(conn: sqlite3.Connection) -> int:
    """The most SQL variables one statement may bind on ``conn`` (999 before SQLite
    3.32, 32,766 by default since, more in some builds)."""
    return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def query_raw(
    conn: sqlite3.Connection, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
) -> list[bytes]:
    """The stored JSON of the events matching any of ``filters``, in the order and with
    the limits of :meth:`relay.store.base.EventStore.query`, without duplicates.

    Each filter is one statement; one that would bind more variables than SQLite allows
    is split into several (:func:`_fitting`), whose answers are merged before its limit
    is applied, so any number of values is answered."""
    live = [f for f in filters if not (f.is_empty_by_construction or f.limit == 0)]
    order = "created_at, id" if oldest_first else "created_at DESC, id"
    most = _variable_limit(conn)
    if len(live) == 1:
        # One filter: SQLite's order is the answer's order and no event repeats.
        sql, params = _select("raw", live[0], now, order)
        if len(params) <= most:
            return [raw for (raw,) in conn.execute(sql, params)]
    sign = 1 if oldest_first else -1

    def key(item: tuple[str, tuple[int, bytes]]) -> tuple[int, str]:
        return (sign * item[1][0], item[0])

    found: dict[str, tuple[int, bytes]] = {}
    for f in live:
        parts = _fitting(f, most)
        rows: dict[str, tuple[int, bytes]] = {}
        for part in parts:
            sql, params = _select("id, created_at, raw", part, now, order)
            for event_id, created_at, raw in conn.execute(sql, params):
                rows[event_id] = (created_at, raw)
        if len(parts) > 1 and f.limit is not None:
            rows = dict(sorted(rows.items(), key=key)[: f.limit])
        found.update(rows)
    return [raw for _, (_, raw) in sorted(found.items(), key=key)]


def _select(columns: str, f: Filter, now: int, order: str) -> tuple[str, list[Any]]:
    where, params = _where(f, now)
    if f.limit is not None:
        params.append(f.limit)
    return _select_sql(columns, where, order, f.limit is not None), params


@functools.lru_cache(maxsize=1024)
def _select_sql(columns: str, where: str, order: str, limited: bool) -> str:
    sql = f"SELECT {columns} FROM events WHERE {where} ORDER BY {order}"
    return sql + " LIMIT ?" if limited else sql


def count_events(conn: sqlite3.Connection, filters: Sequence[Filter], now: int) -> int:
    """How many unexpired events match any of ``filters`` (each counted once, limits
    ignored): one ``UNION`` statement, or, when that would pass SQLite's limits on
    variables or terms, several whose matches are merged here, so any number of filters
    and values is answered."""
    parts, params = [], []
    for f in filters:
        if f.is_empty_by_construction:
            continue
        where, p = _where(f, now)
        parts.append(f"SELECT seq FROM events WHERE {where}")
        params.extend(p)
    if not parts:
        return 0
    most = _variable_limit(conn)
    if len(params) > most or len(parts) > conn.getlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT):
        return _count_in_pieces(conn, filters, now, most)
    row = conn.execute(f"SELECT COUNT(*) FROM ({' UNION '.join(parts)})", params).fetchone()
    return int(row[0])


def _count_in_pieces(
    conn: sqlite3.Connection, filters: Sequence[Filter], now: int, most: int
) -> int:
    """:func:`count_events` in statements each within SQLite's limits on variables
    (``most``) and compound terms, their matches merged here."""
    terms = conn.getlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT)
    statements: list[tuple[list[str], list[Any]]] = []
    for f in filters:
        if f.is_empty_by_construction:
            continue
        for part in _fitting(f, most):
            where, p = _where(part, now)
            if (
                not statements
                or len(statements[-1][1]) + len(p) > most
                or len(statements[-1][0]) >= terms
            ):
                statements.append(([], []))
            statements[-1][0].append(f"SELECT seq FROM events WHERE {where}")
            statements[-1][1].extend(p)
    seqs: set[int] = set()
    for parts, params in statements:
        seqs.update(seq for (seq,) in conn.execute(" UNION ".join(parts), params))
    return len(seqs)
