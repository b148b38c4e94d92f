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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.core.event import Event, event_from_raw
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection
from relay.mls.groups import GroupState
from relay.store import sqlite_mls
from relay.store.base import (
    GroupTransition,
    KeyPackageSaved,
    MlsSweep,
    ServedKeyPackage,
    StoreUnavailable,
)
from relay.store.migrations import apply_migrations
from relay.store.sqlite_events import count_events, delete_seqs, query_raw, save_event

T = TypeVar("T")

_MAX_BATCH = 256
_READERS = 2
_BUSY_TIMEOUT_MS = 5000
_WRITE_ATTEMPTS = 3
_WRITE_BACKOFF = 0.05  # seconds, then x4
# SQLite's default limit on bound parameters is 32766; filters are capped well below.
# A query answered on the event loop (query_raw_now) may run about this many VM steps
# (a 10-event authors+kinds REQ takes ~200, 500 rows of a kind ~5,000: well under a
# millisecond); past it, it is abandoned and the caller runs it on a reader thread.
_INLINE_STEP_CHECK = 1000
_INLINE_STEP_CHECKS = 10


def _connect(path: str, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # A checkpoint runs inside the COMMIT that crosses this many WAL pages and every
        # write in flight waits for it; 4000 (16 MB) instead of 1000 makes that 4x rarer
        # (measured: ack p95 7 ms -> 2 ms under the publish benchmark, see bench/).
        conn.execute("PRAGMA wal_autocheckpoint = 4000")
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
        self.failing: str | None = None  # the last write error, until a commit succeeds

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
        # Optimistic: the whole batch in one transaction. Jobs only touch the database,
        # so if one fails, rolling back and running each job alone is exact, and each
        # caller gets its own result or error.
        if len(batch) > 1:
            try:
                values = self._transaction([job for job, _ in batch])
            except Exception:  # noqa: BLE001 - retried job by job below
                pass
            else:
                for (_, future), value in zip(batch, values, strict=True):
                    future.set_result(value)
                return
        for job, future in batch:
            try:
                future.set_result(self._transaction([job])[0])
            except sqlite3.Error as exc:
                future.set_exception(StoreUnavailable(f"sqlite write failed: {exc}"))
            except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                future.set_exception(exc)

    def _transaction(self, jobs: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """Run ``jobs`` in one transaction and commit; roll back and re-raise on error.

        Operational errors (locked, busy, I/O, disk full) are retried with backoff
        (R-S3); the last one is raised, and remembered for ``/health`` until a commit
        succeeds again.
        """
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                values = self._attempt(jobs)
            except sqlite3.OperationalError as exc:
                self.failing = str(exc)
                if attempt + 1 == _WRITE_ATTEMPTS:
                    raise
                time.sleep(_WRITE_BACKOFF * 4**attempt)
            else:
                self.failing = None
                return values
        raise AssertionError("unreachable")

    def _attempt(self, jobs: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            values = [job(self.conn) for job in jobs]
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return values


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
        self._inline: sqlite3.Connection | None = None  # the event loop's own reader
        self._inline_checks = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and directory if needed, migrate, start the writer."""
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path, readonly=False, synchronous=self.synchronous)
            apply_migrations(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._writer = _Writer(conn)
        self._writer.start()
        self._inline = self._inline_reader()
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
        if self._inline is not None:
            self._inline.close()
            self._inline = None
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
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: int beyond SQLite's int64
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

    def _inline_reader(self) -> sqlite3.Connection | None:
        try:
            conn = _connect(self.path, readonly=True, synchronous="normal")
            # Never wait on the event loop: a busy database sends the query to a thread.
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error:
            return None  # reads still work on the reader threads
        conn.set_progress_handler(self._inline_step, _INLINE_STEP_CHECK)
        return conn

    def _inline_step(self) -> int:
        self._inline_checks += 1
        return self._inline_checks > _INLINE_STEP_CHECKS  # True interrupts the statement

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: job(self._reader()))
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: int beyond SQLite's int64
            raise StoreUnavailable(f"sqlite read failed: {exc}") from exc

    # --- EventStore --------------------------------------------------------------------

    async def save(self, event: Event, now: int) -> Outcome:
        """See :meth:`relay.store.base.EventStore.save`."""
        return await self._write(lambda conn: save_event(conn, event))

    async def query(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[Event]:
        """See :meth:`relay.store.base.EventStore.query`."""
        raws = await self.query_raw(filters, now, oldest_first=oldest_first)
        return [event_from_raw(raw) for raw in raws]

    async def query_raw(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[bytes]:
        """See :meth:`relay.store.base.EventStore.query_raw`."""
        return await self._read(
            lambda conn: query_raw(conn, filters, now, oldest_first=oldest_first)
        )

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        """See :meth:`relay.store.base.EventStore.query_raw_now`: on the event loop's own
        read-only connection, interrupted past a budget of SQLite VM steps; a busy
        database or any error also answers None (the reader thread then says why)."""
        conn = self._inline
        if conn is None:
            return None
        self._inline_checks = 0
        try:
            return query_raw(conn, filters, now)
        except (sqlite3.Error, OverflowError):
            return None

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        """See :meth:`relay.store.base.EventStore.count`."""
        return await self._read(lambda conn: count_events(conn, filters, now))

    async def delete_expired(self, now: int) -> int:
        """See :meth:`relay.store.base.EventStore.delete_expired`."""

        def job(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT seq FROM events WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).fetchall()
            delete_seqs(conn, [r[0] for r in rows])
            return len(rows)

        return await self._write(job)

    async def health(self) -> None:
        """See :meth:`relay.store.base.EventStore.health`; also unhealthy while the last
        write transaction failed (reads may still work when writes do not)."""
        if self._writer is not None and self._writer.failing is not None:
            raise StoreUnavailable(f"writes failing: {self._writer.failing}")
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    # --- MlsStore ----------------------------------------------------------------------

    async def save_keypackage(
        self, event: Event, *, expires_at: int, max_per_owner: int, grace: int, now: int
    ) -> KeyPackageSaved:
        """See :meth:`relay.store.base.MlsStore.save_keypackage`."""
        return await self._write(
            lambda conn: sqlite_mls.save_keypackage(
                conn,
                event,
                expires_at=expires_at,
                max_per_owner=max_per_owner,
                grace=grace,
                now=now,
            )
        )

    async def take_keypackages(
        self,
        authors: Sequence[str],
        *,
        per_author: int,
        consume: bool,
        now: int,
        where: Filter | None = None,
    ) -> list[ServedKeyPackage]:
        """See :meth:`relay.store.base.MlsStore.take_keypackages`."""
        return await self._write(
            lambda conn: sqlite_mls.take_keypackages(
                conn, authors, per_author=per_author, consume=consume, now=now, where=where
            )
        )

    async def save_group_event(
        self, event: Event, transition: GroupTransition, now: int
    ) -> tuple[Outcome | Rejection, GroupState | None]:
        """See :meth:`relay.store.base.MlsStore.save_group_event`."""
        return await self._write(
            lambda conn: sqlite_mls.save_group_event(conn, event, transition, now)
        )

    async def load_groups(self) -> list[GroupState]:
        """See :meth:`relay.store.base.MlsStore.load_groups`."""
        return await self._read(sqlite_mls.load_groups)

    async def sweep_mls(self, now: int, archive_before: int) -> MlsSweep:
        """See :meth:`relay.store.base.MlsStore.sweep_mls`."""
        return await self._write(lambda conn: sqlite_mls.sweep(conn, now, archive_before))
