"""The SQLite store's write side: one writer thread, one checkpointer thread.

The writer owns the only write connection and commits queued jobs in batches: every job
waiting when it wakes up shares one transaction; if that transaction fails, each job runs
again alone, so every caller gets its own result or error. Each caller's future resolves
only after COMMIT, and all futures of a batch resolve in one callback on their loop.

Checkpoints never run inside a COMMIT (``wal_autocheckpoint = 0``): the checkpointer
thread, with its own connection, copies the WAL into the database (PASSIVE: writers and
readers go on) while writes happen, and truncates it once writes pause. Under writes that
never pause, a PASSIVE checkpoint on another connection never catches up with the writer,
so the WAL could never start over: once it holds enough frames, the writer itself copies
the short tail left between two batches (only then can its next transaction reset the WAL),
or restarts it past a ceiling. An acknowledgement never waits for a checkpoint inside its
own COMMIT.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from relay.store.base import StoreUnavailable
from relay.threads import name_os_thread

log = logging.getLogger("relay.store")

_MAX_BATCH = 256
_BUSY_TIMEOUT_MS = 5000
_WRITE_ATTEMPTS = 3
_WRITE_BACKOFF = 0.05  # seconds, then x4
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
# Prepared statements kept per connection: the writer's pipelined inserts alone have one
# text per row count, up to 2 x 64 (sqlite_events._VALUES_ROWS), and a miss re-parses it.
STATEMENT_CACHE_SIZE = 256


def connect(path: str, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
    """A connection to the database at ``path`` with the store's settings: WAL, no automatic
    checkpoints and ``synchronous`` on a writable one; ``readonly`` opens it read-only."""
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
    conn = sqlite3.connect(
        uri,
        uri=True,
        check_same_thread=False,
        isolation_level=None,
        cached_statements=STATEMENT_CACHE_SIZE,
    )
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


class Checkpointer(threading.Thread):
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
        self.conn = connect(path, readonly=False, synchronous=synchronous)
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
            _, frames, _ = wal_checkpoint(self.conn, "PASSIVE")
            if frames >= self.reset:
                self.ask_writer("RESTART" if frames > self.ceiling else "PASSIVE")
            with self.progress:
                self.covered = seen
                self.passes += 1
                self.progress.notify_all()
            time.sleep(self.period)  # let frames gather: one checkpoint copies many
        self.conn.close()

    def _checkpoint(self, mode: str) -> bool:
        busy, frames, copied = wal_checkpoint(self.conn, mode)
        return busy == 0 and copied == frames


def wal_checkpoint(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
    """Run a ``mode`` WAL checkpoint on ``conn``: SQLite's (busy, WAL frames, frames copied).
    A failure is logged and reads as busy, ``(1, 0, 0)``: the next round tries again, and
    the writer reports store faults to the callers of the writes themselves."""
    try:
        row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    except sqlite3.Error as exc:
        log.warning("WAL checkpoint failed", extra={"mode": mode, "error": str(exc)})
        return 1, 0, 0
    return int(row[0]), int(row[1]), int(row[2])


# What the sqlite3 module raises for a failed statement (OverflowError: an integer beyond
# SQLite's int64); the store answers StoreUnavailable for each.
SQLITE_ERRORS = (sqlite3.Error, OverflowError)


def write_failed(exc: BaseException) -> StoreUnavailable:
    """The store's error for a write that raised ``exc``."""
    return StoreUnavailable(f"sqlite write failed: {exc}")


_Job = Callable[[sqlite3.Connection], Any]
_Item = tuple[_Job, "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def run_jobs(conn: sqlite3.Connection, jobs: Sequence[_Job]) -> list[Any]:
    """Each job's value, running them in order on ``conn``. Consecutive jobs with the
    same ``combine`` function (an attribute) run as one call, ``combine(conn, jobs)``,
    which returns their values in order: a batch then costs a few statements, not a
    few per job."""
    values: list[Any] = []
    i = 0
    while i < len(jobs):
        combine = getattr(jobs[i], "combine", None)
        end = i + 1
        if combine is None:
            values.append(jobs[i](conn))
        else:
            while end < len(jobs) and getattr(jobs[end], "combine", None) is combine:
                end += 1
            values.extend(combine(conn, jobs[i:end]))
        i = end
    return values


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve a batch's futures on their loop (callers that gave up are skipped)."""
    for future, value, exc in results:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


class Writer(threading.Thread):
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
        # A RESTART waits for readers at most _CHECKPOINT_BUSY_MS, not the writes' timeout.
        if mode != "RESTART":
            wal_checkpoint(self.conn, mode)
            return
        self.conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_BUSY_MS}")
        try:
            wal_checkpoint(self.conn, mode)  # logs its own failure
        finally:
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
            except SQLITE_ERRORS as exc:
                outcomes.append((None, write_failed(exc)))
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
            values = run_jobs(self.conn, jobs)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return values
