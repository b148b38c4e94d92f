"""The embedded SQLite event store (default backend).

Writes go to one writer thread that commits them in batches, with WAL checkpoints on a
thread of their own (:mod:`relay.store.sqlite_writer`); each caller's future resolves only
after COMMIT. Reads run on a small pool of read-only connections; WAL lets them proceed
while the writer commits. A small read (``query_raw_now``: a REQ's 10 newest events) runs
on the event loop's own read-only connection instead, which saves the thread round trip;
SQLite interrupts it past a budget of VM steps and it never waits for a lock, and then it
is left to the pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import sqlite3
import threading
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
from relay.store.sqlite_events import (
    count_events,
    delete_seqs,
    has_json,
    is_plain,
    query_raw,
    save_event,
    save_plain_events,
)
from relay.store.sqlite_writer import SQLITE_ERRORS, Checkpointer, Writer, connect
from relay.threads import name_os_thread

T = TypeVar("T")

_READERS = 2
# A query answered on the event loop (query_raw_now) asks for at most this many events
# (each costs 1-2 us to fetch) and may run about 4,000 SQLite VM steps (a 10-event
# authors+kinds REQ takes ~200; a row read or skipped takes ~7): a few hundred
# microseconds at most. Past either, the caller runs it on a reader thread.
_INLINE_MAX_EVENTS = 200
_INLINE_STEP_CHECK = 500
_INLINE_STEP_CHECKS = 8


@dataclasses.dataclass(frozen=True)
class PlainRun:
    """A writer job: save a run of plain events together. Runs next to each other in
    the writer's batch (from several connections) are saved as one."""

    events: Sequence[Event]

    def __call__(self, conn: sqlite3.Connection) -> list[Outcome]:
        return save_plain_events(conn, self.events)

    @staticmethod
    def combine(conn: sqlite3.Connection, runs: Sequence[PlainRun]) -> list[list[Outcome]]:
        """Each run's outcomes, all saved with one :func:`save_plain_events` call."""
        outcomes = iter(save_plain_events(conn, [e for run in runs for e in run.events]))
        return [list(itertools.islice(outcomes, len(run.events))) for run in runs]


class SqliteStore:
    """:class:`~relay.store.base.EventStore` on one SQLite file in WAL mode."""

    def __init__(self, path: str | Path, *, synchronous: str = "normal") -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._writer: Writer | None = None
        self._checkpointer: Checkpointer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._inline: sqlite3.Connection | None = None  # the event loop's own reader
        self._inline_checks = 0
        self._batch_plain = False  # runs of plain events saved set-based (needs JSON1)

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and directory if needed, migrate, start the writer."""
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, readonly=False, synchronous=self.synchronous)
            apply_migrations(conn)
            self._batch_plain = has_json(conn)
            checkpointer = Checkpointer(self.path, synchronous=self.synchronous)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._checkpointer = checkpointer
        checkpointer.start()
        self._writer = Writer(conn, checkpointer.notify)
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
        return cast(T, await future)  # the writer turned SQLite errors into StoreUnavailable

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True, synchronous="normal")
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    def _inline_reader(self) -> sqlite3.Connection | None:
        try:
            conn = connect(self.path, readonly=True, synchronous="normal")
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
        except SQLITE_ERRORS as exc:
            raise StoreUnavailable(f"sqlite read failed: {exc}") from exc

    # --- EventStore --------------------------------------------------------------------

    async def save(self, event: Event, now: int) -> Outcome:
        """See :meth:`relay.store.base.EventStore.save`."""
        return await self._write(lambda conn: save_event(conn, event))

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        """See :meth:`relay.store.base.EventStore.save_many`. Each run of plain events
        (:func:`~relay.store.sqlite_events.is_plain`) is one set-based job, any other
        event a job of its own, all sharing the writer's transaction. A run whose job
        fails is saved again one job per event, so each event fails alone."""
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        runs: list[list[Event]] = []  # what each job saves
        jobs: list[Callable[[sqlite3.Connection], Any]] = []
        for plain, group in itertools.groupby(events, self._saves_together):
            if plain:
                runs.append(list(group))
                jobs.append(PlainRun(runs[-1]))
                continue
            for event in group:
                runs.append([event])
                jobs.append(functools.partial(_save_alone, event=event))
        loop = asyncio.get_running_loop()
        futures = self._writer.submit(jobs, loop)
        results: list[Outcome | StoreUnavailable] = []
        for run, future in zip(runs, futures, strict=True):
            # all resolve in one loop callback: one suspension
            try:
                value = await future
            except Exception as exc:  # noqa: BLE001 - a run is saved again event by event
                if len(run) > 1:
                    results.extend(await self._save_each(run, loop))
                elif isinstance(exc, StoreUnavailable):
                    results.append(exc)
                else:
                    raise
            else:
                results.extend(value)  # one outcome per event of the run
        return results

    def _saves_together(self, event: Event) -> bool:
        return self._batch_plain and is_plain(event)

    async def _save_each(
        self, events: Sequence[Event], loop: asyncio.AbstractEventLoop
    ) -> list[Outcome | StoreUnavailable]:
        assert self._writer is not None
        jobs = [functools.partial(save_event, event=event) for event in events]
        results: list[Outcome | StoreUnavailable] = []
        for future in self._writer.submit(jobs, loop):
            try:
                results.append(await future)
            except StoreUnavailable as exc:
                results.append(exc)
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
        except SQLITE_ERRORS:
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

    async def check_write(self) -> None:
        """See :meth:`relay.store.base.EventStore.check_write`: a transaction on the writer
        thread, the path every client write takes (``BEGIN IMMEDIATE`` … ``COMMIT``, retried
        as they are), that sets the database header's ``user_version`` to the value it
        has: one page written and committed, no row changed (an empty transaction writes
        nothing, so it could succeed while commits that write fail). Its commit clears
        the writer's failure, as a client write's does."""
        await self._write(_rewrite_header)

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


def _save_alone(conn: sqlite3.Connection, event: Event) -> list[Outcome]:
    """:func:`save_event` as a job of ``save_many``: every job gives a list of outcomes,
    one per event it saves."""
    return [save_event(conn, event)]


def _rewrite_header(conn: sqlite3.Connection) -> None:
    """Set ``user_version`` (unused by the relay) to its own value: a write of the header
    page that changes nothing."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.execute(f"PRAGMA user_version = {int(version)}")
