"""Stand-in stores: the real SQLite store with switchable failures (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.store.base import ServedKeyPackage, StoreUnavailable
from relay.store.sqlite import SqliteStore


class FlakyStore(SqliteStore):
    """A :class:`SqliteStore` whose writes, reads or health check can be made to fail.

    ``fail_saves`` / ``fail_queries`` fail every call; ``fail_next`` fails that many of
    the next save/query/count/take calls, then works again; ``hang`` makes those calls
    never answer (a wedged database). The write check is a write: ``fail_saves`` and
    ``hang`` apply to it too, and ``write_checks`` counts its calls. ``health_mode`` is
    ``"ok"``, ``"raise"`` (StoreUnavailable) or ``"hang"``. ``calls`` counts the calls
    that reached the store.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.fail_saves = False
        self.fail_queries = False
        self.fail_next = 0
        self.hang = False
        self.health_mode = "ok"
        self.calls = 0
        self.write_checks = 0

    async def _fault(self, failing: bool, message: str) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StoreUnavailable(f"{message} (stand-in, transient)")
        if failing:
            raise StoreUnavailable(f"{message} (stand-in)")

    async def save(self, event: Event, now: int) -> Outcome:
        await self._fault(self.fail_saves, "disk I/O error")
        return await super().save(event, now)

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        results: list[Outcome | StoreUnavailable] = []
        for event in events:  # each through save(): its faults apply event by event
            try:
                results.append(await self.save(event, now))
            except StoreUnavailable as exc:
                results.append(exc)
        return results

    async def query_raw(  # SqliteStore.query reads through it too
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[bytes]:
        await self._fault(self.fail_queries, "database is locked")
        return await super().query_raw(filters, now, oldest_first=oldest_first)

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        # Any configured fault is met on the waiting path, where it can be observed.
        if self.hang or self.fail_next or self.fail_queries:
            return None
        return super().query_raw_now(filters, now)

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        await self._fault(self.fail_queries, "database is locked")
        return await super().count(filters, now)

    async def take_keypackages(
        self,
        authors: Sequence[str],
        *,
        per_author: int,
        consume: bool,
        now: int,
        where: Filter | None = None,
    ) -> list[ServedKeyPackage]:
        await self._fault(self.fail_saves, "disk I/O error")
        return await super().take_keypackages(
            authors, per_author=per_author, consume=consume, now=now, where=where
        )

    async def check_write(self) -> None:
        self.write_checks += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_saves:
            raise StoreUnavailable("disk I/O error (stand-in)")
        await super().check_write()

    async def health(self) -> None:
        if self.health_mode == "raise":
            raise StoreUnavailable("database file is gone (stand-in)")
        if self.health_mode == "hang":
            await asyncio.Event().wait()
        await super().health()
