"""Stand-in stores: the real SQLite store with switchable failures (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.store.base import StoreUnavailable
from relay.store.sqlite import SqliteStore


class FlakyStore(SqliteStore):
    """A :class:`SqliteStore` whose writes, reads or health check can be made to fail.

    ``health_mode`` is ``"ok"``, ``"raise"`` (StoreUnavailable) or ``"hang"`` (never
    answers, as a wedged database would).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.fail_saves = False
        self.fail_queries = False
        self.health_mode = "ok"

    async def save(self, event: Event, now: int) -> Outcome:
        if self.fail_saves:
            raise StoreUnavailable("disk I/O error (stand-in)")
        return await super().save(event, now)

    async def query(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[Event]:
        if self.fail_queries:
            raise StoreUnavailable("database is locked (stand-in)")
        return await super().query(filters, now, oldest_first=oldest_first)

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        if self.fail_queries:
            raise StoreUnavailable("database is locked (stand-in)")
        return await super().count(filters, now)

    async def health(self) -> None:
        if self.health_mode == "raise":
            raise StoreUnavailable("database file is gone (stand-in)")
        if self.health_mode == "hang":
            await asyncio.Event().wait()
        await super().health()
