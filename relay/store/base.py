"""The event store boundary (R-S1).

Every implementation translates its own failures into :class:`StoreUnavailable`
(``raise StoreUnavailable(...) from exc``) so the server can answer ``error:`` and keep
serving. Exceptions::

    StoreError
     └── StoreUnavailable   the store did not answer or failed; nothing was committed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection
from relay.mls.groups import GroupState


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

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        """:meth:`save` each of ``events``, in order, as one call (a backend may share
        one commit among them). The result for each event is its outcome, or the
        :class:`StoreUnavailable` its ``save`` would have raised: one failure does not
        fail the others, and every outcome is committed when this returns."""
        ...

    async def query(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[Event]:
        """Events matching any filter, newest first (created_at desc, id asc), at most
        each filter's ``limit`` per filter, without duplicates or expired events.
        ``oldest_first`` reverses the order and takes the oldest ``limit`` (catch-up)."""
        ...

    async def query_raw(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[bytes]:
        """What :meth:`query` returns, as each event's stored JSON (sent on unparsed)."""
        ...

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        """What :meth:`query_raw` returns, answered at once without I/O waits, or None
        when that would take more than a small fixed amount of work (or the backend
        cannot answer without waiting): then call :meth:`query_raw`."""
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

    async def check_write(self) -> None:
        """A write that changes none of the relay's data (no event, key package or group
        is added, changed or counted), committed as a client write would be; returns once
        committed, raises :class:`StoreUnavailable` when it cannot be. A success counts as
        a successful write for the store's own health."""
        ...


GroupTransition = Callable[[GroupState | None], GroupState | Rejection | None]
"""Pure decision run inside the store's transaction: the new state, a rejection, or
None for "store the event, change nothing"."""


@dataclass(frozen=True)
class KeyPackageSaved:
    """Result of :meth:`MlsStore.save_keypackage`."""

    outcome: Outcome
    evicted: int = 0
    last_resort_scheduled: int = 0


@dataclass(frozen=True)
class ServedKeyPackage:
    """One key package answered to a fetch, and whether it was consumed (deleted)."""

    event: Event
    consumed: bool


@dataclass(frozen=True)
class MlsSweep:
    """What one MLS sweep removed (R-M9, R-M1b)."""

    archived: int = 0
    keypackages_expired: int = 0
    last_resort_deleted: int = 0


class MlsStore(EventStore, Protocol):
    """An event store that also carries the MLS gateway state (R-S1)."""

    async def save_keypackage(
        self, event: Event, *, expires_at: int, max_per_owner: int, grace: int, now: int
    ) -> KeyPackageSaved:
        """Store a validated 443 unchanged; evict the owner's oldest beyond
        ``max_per_owner``; schedule the owner's served last-resort key package for
        deletion at ``now + grace`` (durably)."""
        ...

    async def take_keypackages(
        self,
        authors: Sequence[str],
        *,
        per_author: int,
        consume: bool,
        now: int,
        where: Filter | None = None,
    ) -> list[ServedKeyPackage]:
        """R-M1b fetch for each author (see :func:`relay.mls.keypackages.plan_fetch`):
        serves key packages matching ``where``, but decides which one is the owner's last
        among all the owner holds (pass them all to ``plan_fetch`` with ``matching``), and
        consumes served key packages in the same transaction when ``consume``."""
        ...

    async def save_group_event(
        self, event: Event, transition: GroupTransition, now: int
    ) -> tuple[Outcome | Rejection, GroupState | None]:
        """Atomically: load group ``h``, run ``transition``, store the event and the new
        state. Returns the outcome and the group's state if it changed."""
        ...

    async def load_groups(self) -> list[GroupState]:
        """Every stored group state."""
        ...

    async def sweep_mls(self, now: int, archive_before: int) -> MlsSweep:
        """Delete 445/446/1059 created before ``archive_before``, expired key packages,
        and last-resort key packages whose grace period has ended."""
        ...
