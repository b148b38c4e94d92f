"""The embedded SQLite event store (default backend).

One writer thread owns the only write connection and commits queued writes in
batches: every ``save`` waiting at the moment the writer wakes up shares one
transaction (each in its own savepoint, so one failure does not sink the others),
and each caller's future resolves only after COMMIT. Reads run on a small pool of
read-only connections; WAL lets them proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.core.event import Event, event_from_raw, is_addressable, is_replaceable
from relay.core.filters import Filter
from relay.core.session import Outcome
from relay.store.base import StoreUnavailable
from relay.store.migrations import apply_migrations

T = TypeVar("T")

_MAX_BATCH = 256
_READERS = 2
_BUSY_TIMEOUT_MS = 5000
# SQLite's default limit on bound parameters is 32766; filters are capped well below.


def _connect(path: str, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -32000")
    return conn


class _Writer(threading.Thread):
    """Owns the write connection; runs queued jobs in batched transactions."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(name="sqlite-writer", daemon=True)
        self.conn = conn
        self.jobs: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | None]
        self.jobs = queue.SimpleQueue()

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        self.jobs.put((job, future))
        return future

    def stop(self) -> None:
        self.jobs.put(None)

    def run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < _MAX_BATCH:
                try:
                    item = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stopping:
                return

    def _run_batch(
        self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]]
    ) -> None:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for job, future in batch:
                self.conn.execute("SAVEPOINT job")
                try:
                    value = job(self.conn)
                except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                    self.conn.execute("ROLLBACK TO job")
                    self.conn.execute("RELEASE job")
                    results.append((future, None, exc))
                else:
                    self.conn.execute("RELEASE job")
                    results.append((future, value, None))
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            for _, future in batch:
                future.set_exception(StoreUnavailable(f"sqlite commit failed: {exc}"))
            return
        for future, value, err in results:
            if err is not None:
                future.set_exception(err)
            else:
                future.set_result(value)


class SqliteStore:
    """:class:`~relay.store.base.EventStore` on one SQLite file in WAL mode."""

    def __init__(self, path: str | Path, *, synchronous: str = "normal") -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._writer: _Writer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and directory if needed, migrate, start the writer."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(self.path, readonly=False, synchronous=self.synchronous)
            apply_migrations(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._writer = _Writer(conn)
        self._writer.start()
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="sqlite-reader")

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._writer is not None:
            self._writer.stop()
            await asyncio.to_thread(self._writer.join)
            self._writer.conn.close()
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # --- plumbing ----------------------------------------------------------------------

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        try:
            return await asyncio.wrap_future(self._writer.submit(job))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite write failed: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=True, synchronous="normal")
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: job(self._reader()))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite read failed: {exc}") from exc

    # --- EventStore --------------------------------------------------------------------

    async def save(self, event: Event, now: int) -> Outcome:
        """See :meth:`relay.store.base.EventStore.save`."""
        return await self._write(lambda conn: _save(conn, event))

    async def query(self, filters: Sequence[Filter], now: int) -> list[Event]:
        """See :meth:`relay.store.base.EventStore.query`."""
        raws = await self._read(lambda conn: _query(conn, filters, now))
        return [event_from_raw(raw) for raw in raws]

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        """See :meth:`relay.store.base.EventStore.count`."""
        return await self._read(lambda conn: _count(conn, filters, now))

    async def delete_expired(self, now: int) -> int:
        """See :meth:`relay.store.base.EventStore.delete_expired`."""

        def job(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT seq FROM events WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).fetchall()
            _delete_seqs(conn, [r[0] for r in rows])
            return len(rows)

        return await self._write(job)

    async def health(self) -> None:
        """See :meth:`relay.store.base.EventStore.health`."""
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())


# --- SQL, run on the store's threads ---------------------------------------------------


def _delete_seqs(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    for start in range(0, len(seqs), 500):
        chunk = list(seqs[start : start + 500])
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM tags WHERE event_seq IN ({marks})", chunk)
        conn.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)


def _is_newer(a_created: int, a_id: str, b_created: int, b_id: str) -> bool:
    """NIP-01 replacement order: later created_at wins; on a tie, the lowest id."""
    return a_created > b_created or (a_created == b_created and a_id < b_id)


def _save(conn: sqlite3.Connection, event: Event) -> Outcome:
    if conn.execute("SELECT 1 FROM events WHERE id = ?", (event.id,)).fetchone():
        return Outcome.DUPLICATE
    if conn.execute(
        "SELECT 1 FROM deletions WHERE event_id = ? AND pubkey = ?", (event.id, event.pubkey)
    ).fetchone():
        return Outcome.DELETED
    d_tag: str | None = None
    if is_replaceable(event.kind) or is_addressable(event.kind):
        d_tag = event.d_tag if is_addressable(event.kind) else ""
        row = conn.execute(
            "SELECT until FROM deleted_coords WHERE kind = ? AND pubkey = ? AND d_tag = ?",
            (event.kind, event.pubkey, d_tag),
        ).fetchone()
        if row is not None and event.created_at <= row[0]:
            return Outcome.DELETED
        older = []
        for seq, created_at, other_id in conn.execute(
            "SELECT seq, created_at, id FROM events WHERE pubkey = ? AND kind = ? AND d_tag = ?",
            (event.pubkey, event.kind, d_tag),
        ).fetchall():
            if _is_newer(created_at, other_id, event.created_at, event.id):
                return Outcome.SUPERSEDED
            older.append(seq)
        _delete_seqs(conn, older)
    cursor = conn.execute(
        "INSERT INTO events (id, pubkey, created_at, kind, d_tag, expires_at, raw)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.pubkey, event.created_at, event.kind, d_tag, event.expiration, event.raw),
    )
    seq = cursor.lastrowid
    tag_rows = [
        (seq, t[0], t[1], event.created_at) for t in event.tags if len(t) > 1 and len(t[0]) == 1
    ]
    if tag_rows:
        conn.executemany(
            "INSERT INTO tags (event_seq, name, value, created_at) VALUES (?, ?, ?, ?)", tag_rows
        )
    if event.kind == 5:
        _apply_deletion(conn, event)
    return Outcome.STORED


def _apply_deletion(conn: sqlite3.Connection, event: Event) -> None:
    """NIP-09: remove the author's referenced events (never other deletions) and
    remember them so they cannot be published again."""
    for target in event.tag_values("e"):
        conn.execute(
            "INSERT OR IGNORE INTO deletions (event_id, pubkey) VALUES (?, ?)",
            (target, event.pubkey),
        )
        rows = conn.execute(
            "SELECT seq FROM events WHERE id = ? AND pubkey = ? AND kind != 5",
            (target, event.pubkey),
        ).fetchall()
        _delete_seqs(conn, [r[0] for r in rows])
    for coordinate in event.tag_values("a"):
        parts = coordinate.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] != event.pubkey:
            continue
        kind, d_tag = int(parts[0]), parts[2]
        if not (is_addressable(kind) or is_replaceable(kind)):
            continue
        if is_replaceable(kind):
            d_tag = ""
        conn.execute(
            "INSERT INTO deleted_coords (kind, pubkey, d_tag, until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, pubkey, d_tag) DO UPDATE SET until = MAX(until, excluded.until)",
            (kind, event.pubkey, d_tag, event.created_at),
        )
        rows = conn.execute(
            "SELECT seq FROM events WHERE kind = ? AND pubkey = ? AND d_tag = ?"
            " AND created_at <= ?",
            (kind, event.pubkey, d_tag, event.created_at),
        ).fetchall()
        _delete_seqs(conn, [r[0] for r in rows])


def _where(f: Filter, now: int) -> tuple[str, list[Any]]:
    clauses = ["(expires_at IS NULL OR expires_at > ?)"]
    params: list[Any] = [now]
    for column, values in (("id", f.ids), ("pubkey", f.authors), ("kind", f.kinds)):
        if values is not None:
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(sorted(values))
    if f.since is not None:
        clauses.append("created_at >= ?")
        params.append(f.since)
    if f.until is not None:
        clauses.append("created_at <= ?")
        params.append(f.until)
    for name, values in f.tags:
        clauses.append(
            "seq IN (SELECT event_seq FROM tags WHERE name = ? AND value IN "
            f"({','.join('?' * len(values))}))"
        )
        params.append(name)
        params.extend(sorted(values))
    return " AND ".join(clauses), params


def _query(conn: sqlite3.Connection, filters: Sequence[Filter], now: int) -> list[bytes]:
    found: dict[str, tuple[int, bytes]] = {}
    for f in filters:
        if f.is_empty_by_construction or f.limit == 0:
            continue
        where, params = _where(f, now)
        sql = f"SELECT id, created_at, raw FROM events WHERE {where} ORDER BY created_at DESC, id"
        if f.limit is not None:
            sql += " LIMIT ?"
            params.append(f.limit)
        for event_id, created_at, raw in conn.execute(sql, params):
            found[event_id] = (created_at, raw)
    ordered = sorted(found.items(), key=lambda item: (-item[1][0], item[0]))
    return [raw for _, (_, raw) in ordered]


def _count(conn: sqlite3.Connection, filters: Sequence[Filter], now: int) -> int:
    parts, params = [], []
    for f in filters:
        if f.is_empty_by_construction:
            continue
        where, p = _where(f, now)
        parts.append(f"SELECT seq FROM events WHERE {where}")
        params.extend(p)
    if not parts:
        return 0
    row = conn.execute(f"SELECT COUNT(*) FROM ({' UNION '.join(parts)})", params).fetchone()
    return int(row[0])
