"""The embedded SQLite event store (default backend).

One writer thread owns the only write connection and commits queued writes in
batches: every ``save`` waiting at the moment the writer wakes up shares one
transaction (each in its own savepoint, so one failure does not sink the others),
and each caller's future resolves only after COMMIT. Reads run on a small pool of
read-only connections; WAL lets them proceed while the writer commits. A small read
(``query_raw_now``: a REQ's 10 newest events) runs on the event loop's own read-only
connection instead, which saves the thread round trip; SQLite interrupts it past a
budget of VM steps and it never waits for a lock, and then it is left to the pool.

Checkpoints never run inside a COMMIT (``wal_autocheckpoint = 0``): a checkpointer
thread with its own connection copies the WAL into the database (PASSIVE: writers and
readers go on) while writes happen, and truncates it once writes pause. Under writes
that never pause, a PASSIVE checkpoint on another connection never catches up with the
writer, so the WAL could never start over: once it holds enough frames, the writer
itself copies the short tail left between two batches (only then can its next
transaction reset the WAL), or restarts it past a ceiling. An acknowledgement never
waits for a checkpoint inside its own COMMIT.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

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
from relay.threads import name_os_thread

T = TypeVar("T")
log = logging.getLogger("relay.store")

_MAX_BATCH = 256
_READERS = 2
_BUSY_TIMEOUT_MS = 5000
_WRITE_ATTEMPTS = 3
_WRITE_BACKOFF = 0.05  # seconds, then x4
# SQLite's default limit on bound parameters is 32766; filters are capped well below.
# The checkpointer: a PASSIVE checkpoint at most this often while writes happen; past
# CHECKPOINT_RESET frames the writer finishes it between batches (so its next
# transaction resets the WAL), past CHECKPOINT_CEILING (readers kept the WAL from
# resetting) with a RESTART that waits at most _CHECKPOINT_BUSY_MS for them; a TRUNCATE
# after CHECKPOINT_IDLE without writes. A reset WAL file is cut to _WAL_SIZE_LIMIT.
CHECKPOINT_PERIOD = 0.2  # seconds
CHECKPOINT_RESET = 16_000  # frames (pages), about 64 MB
CHECKPOINT_CEILING = 64_000  # frames, about 256 MB
CHECKPOINT_IDLE = 1.0  # seconds
_CHECKPOINT_BUSY_MS = 200
_WAL_SIZE_LIMIT = 128 * 1024 * 1024
# A query answered on the event loop (query_raw_now) asks for at most this many events
# (each costs 1-2 us to fetch) and may run about 4,000 SQLite VM steps (a 10-event
# authors+kinds REQ takes ~200; a row read or skipped takes ~7): a few hundred
# microseconds at most. Past either, the caller runs it on a reader thread.
_INLINE_MAX_EVENTS = 200
_INLINE_STEP_CHECK = 500
_INLINE_STEP_CHECKS = 8


def _connect(path: str, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # An automatic checkpoint runs inside the COMMIT that crosses its threshold, and
        # every write in flight waits for it (the 82 ms publish p99 of issue 13): the
        # checkpointer thread does this work instead.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -32000")
    return conn


class _Checkpointer(threading.Thread):
    """Keeps the WAL bounded without ever running inside the writer's COMMIT."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str,
        period: float = CHECKPOINT_PERIOD,
        reset: int = CHECKPOINT_RESET,
        ceiling: int = CHECKPOINT_CEILING,
        idle: float = CHECKPOINT_IDLE,
    ) -> None:
        super().__init__(name="sqlite-ckpt", daemon=True)
        self.conn = _connect(path, readonly=False, synchronous=synchronous)
        self.conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_BUSY_MS}")
        self.period = period
        self.reset = reset
        self.ceiling = ceiling
        # Asks the writer for a checkpoint between two batches ("PASSIVE"/"RESTART").
        self.ask_writer: Callable[[str], None] = lambda mode: None
        self.idle = idle
        self.written = threading.Event()
        self.stopping = False
        self.truncated = threading.Event()  # set while the WAL is empty on disk
        self.commits = 0  # transactions the writer reported
        self.covered = 0  # of those, how many the last finished checkpoint started after
        self.passes = 0  # PASSIVE checkpoints done while writes happened
        self.progress = threading.Condition()

    def notify(self) -> None:
        """A transaction committed (called by the writer thread only)."""
        self.commits += 1
        self.truncated.clear()
        self.written.set()

    def wait_covered(self, commits: int, timeout: float) -> bool:
        """Wait until a checkpoint that started after the ``commits``-th commit finished
        (its pages are in the database file unless a reader still needed them)."""
        with self.progress:
            return self.progress.wait_for(lambda: self.covered >= commits, timeout)

    def stop(self) -> None:
        """Finish the current checkpoint and end the thread."""
        self.stopping = True
        self.written.set()

    def run(self) -> None:
        name_os_thread()
        dirty = False
        while not self.stopping:
            if not self.written.wait(self.idle):
                if dirty:
                    dirty = not self._checkpoint("TRUNCATE")
                    if not dirty:
                        self.truncated.set()
                continue
            self.written.clear()
            if self.stopping:
                break
            dirty = True
            seen = self.commits
            _, frames, _ = self._checkpoint_counts("PASSIVE")
            if frames >= self.reset:
                self.ask_writer("RESTART" if frames > self.ceiling else "PASSIVE")
            with self.progress:
                self.covered = seen
                self.passes += 1
                self.progress.notify_all()
            time.sleep(self.period)  # let frames gather: one checkpoint copies many
        self.conn.close()

    def _checkpoint(self, mode: str) -> bool:
        busy, frames, copied = self._checkpoint_counts(mode)
        return busy == 0 and copied == frames

    def _checkpoint_counts(self, mode: str) -> tuple[int, int, int]:
        try:
            row = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # the writer reports store faults; retry next round
            log.warning("WAL checkpoint failed", extra={"mode": mode, "error": str(exc)})
            return 1, 0, 0
        return int(row[0]), int(row[1]), int(row[2])


_Job = Callable[[sqlite3.Connection], Any]
_Item = tuple[_Job, "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve a batch's futures on their loop (callers that gave up are skipped)."""
    for future, value, exc in results:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


class _Writer(threading.Thread):
    """Owns the write connection; runs queued jobs in batched transactions."""

    def __init__(
        self, conn: sqlite3.Connection, on_commit: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(name="sqlite-writer", daemon=True)
        self.conn = conn
        self.on_commit = on_commit
        self.checkpoint_wanted: str | None = None  # set by the checkpointer thread
        self.jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.failing: str | None = None  # the last write error, until a commit succeeds

    def submit(
        self, jobs: Sequence[_Job], loop: asyncio.AbstractEventLoop
    ) -> list[asyncio.Future[Any]]:
        """Queue ``jobs`` in order; each future resolves on ``loop`` after its COMMIT."""
        futures = [loop.create_future() for _ in jobs]
        for job, future in zip(jobs, futures, strict=True):
            self.jobs.put((job, future, loop))
        return futures

    def stop(self) -> None:
        self.jobs.put(None)

    def run(self) -> None:
        name_os_thread()
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
            self._hand_back(batch, self._run_batch([job for job, _, _ in batch]))
            if stopping:
                return
            mode, self.checkpoint_wanted = self.checkpoint_wanted, None
            if mode is not None:
                self._checkpoint(mode)

    def want_checkpoint(self, mode: str) -> None:
        """Run a ``mode`` checkpoint after the current batch (any thread may ask)."""
        self.checkpoint_wanted = mode

    def _checkpoint(self, mode: str) -> None:
        # Between batches: no transaction is open and the acks are already handed back.
        try:
            if mode == "RESTART":
                self.conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_BUSY_MS}")
            self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed", extra={"mode": mode, "error": str(exc)})
        finally:
            if mode == "RESTART":
                self.conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")

    @staticmethod
    def _hand_back(batch: list[_Item], outcomes: list[tuple[Any, BaseException | None]]) -> None:
        # One wake-up of each waiting loop for the whole batch, not one per job.
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_, future, loop), (value, exc) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, value, exc))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, results)
            except RuntimeError:  # the loop closed: nobody is waiting any more
                pass

    def _run_batch(self, jobs: list[_Job]) -> list[tuple[Any, BaseException | None]]:
        # Optimistic: the whole batch in one transaction. Jobs only touch the database,
        # so if one fails, rolling back and running each job alone is exact, and each
        # caller gets its own result or error.
        if len(jobs) > 1:
            try:
                values = self._transaction(jobs)
            except Exception:  # noqa: BLE001 - retried job by job below
                pass
            else:
                return [(value, None) for value in values]
        outcomes: list[tuple[Any, BaseException | None]] = []
        for job in jobs:
            try:
                outcomes.append((self._transaction([job])[0], None))
            except sqlite3.Error as exc:
                outcomes.append((None, StoreUnavailable(f"sqlite write failed: {exc}")))
            except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                outcomes.append((None, exc))
        return outcomes

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
                self.on_commit()
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
        self._checkpointer: _Checkpointer | None = None
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
            checkpointer = _Checkpointer(self.path, synchronous=self.synchronous)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._checkpointer = checkpointer
        checkpointer.start()
        self._writer = _Writer(conn, checkpointer.notify)
        checkpointer.ask_writer = self._writer.want_checkpoint
        self._writer.start()
        self._inline = self._inline_reader()
        self._readers = ThreadPoolExecutor(
            _READERS, thread_name_prefix="sqlite-reader", initializer=name_os_thread
        )

    async def close(self) -> None:
        """Finish queued writes, then close every connection (the write connection
        last: closing it checkpoints what is left into the database file)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
            await asyncio.to_thread(writer.join)
        if self._checkpointer is not None:
            self._checkpointer.stop()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
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
        if writer is not None:
            writer.conn.close()

    # --- plumbing ----------------------------------------------------------------------

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        (future,) = self._writer.submit((job,), asyncio.get_running_loop())
        try:
            return cast(T, await future)
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

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        """See :meth:`relay.store.base.EventStore.save_many`: one queued job per event,
        so they share the writer's transaction and each fails alone."""
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        jobs = [functools.partial(save_event, event=event) for event in events]
        futures = self._writer.submit(jobs, asyncio.get_running_loop())
        results: list[Outcome | StoreUnavailable] = []
        for future in futures:  # all resolve in one loop callback: one suspension
            try:
                results.append(await future)
            except StoreUnavailable as exc:
                results.append(exc)
            except (sqlite3.Error, OverflowError) as exc:
                results.append(StoreUnavailable(f"sqlite write failed: {exc}"))
        return results

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
        read-only connection, for filters asking for a few events in all, interrupted
        past a budget of SQLite VM steps; a busy database or any error also answers None
        (the reader thread then says why)."""
        conn = self._inline
        if conn is None:
            return None
        limits = [f.limit for f in filters]
        if None in limits or sum(limit or 0 for limit in limits) > _INLINE_MAX_EVENTS:
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
