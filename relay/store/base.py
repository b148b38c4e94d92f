"""The event store boundary (R-S1).

Every implementation translates its own failures into :class:`StoreUnavailable`
(``raise StoreUnavailable(...) from exc``) so the server can answer ``error:`` and keep
serving. Exceptions::

    StoreError
     └── StoreUnavailable   the store did not answer or failed; nothing was committed
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.session import Outcome


class StoreError(Exception):
    """Root of the store's exceptions."""


class StoreUnavailable(StoreError):
    """The store failed or did not answer; the operation had no effect."""


class EventStore(Protocol):
    """Durable storage of events. All methods are coroutine-safe."""

    async def open(self) -> None:
        """Connect and apply pending migrations; call once before anything else."""
        ...

    async def close(self) -> None:
        """Flush pending writes and release resources."""
        ...

    async def save(self, event: Event, now: int) -> Outcome:
        """Store ``event`` with NIP-01/09 semantics; returns only after it is committed.

        Replaceable/addressable events replace older versions (ties: lowest id wins);
        a kind-5 deletion removes the author's referenced events and blocks them.
        """
        ...

    async def query(self, filters: Sequence[Filter], now: int) -> list[Event]:
        """Events matching any filter, newest first (created_at desc, id asc), at most
        each filter's ``limit`` per filter, without duplicates or expired events."""
        ...

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        """How many distinct unexpired events match any of ``filters`` (limits ignored)."""
        ...

    async def delete_expired(self, now: int) -> int:
        """Remove events whose NIP-40 expiration has passed; returns how many."""
        ...

    async def health(self) -> None:
        """Return if the store answers a trivial query; raise :class:`StoreUnavailable`."""
        ...
