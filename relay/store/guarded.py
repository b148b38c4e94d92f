"""Store faults (R-S3): a time budget on every store call and bounded retries with backoff,
in front of any :class:`~relay.store.base.MlsStore`.

A call that does not finish within ``timeout`` (retries included) raises
:class:`StoreUnavailable`, so the relay answers ``OK false "error: …"`` or
``CLOSED "error: …"`` in bounded time and keeps serving. Only calls that are safe to
repeat are retried: reads, and writes that are idempotent by event id (a repeated save
of an event that did commit answers DUPLICATE, which is still ``OK true``). A consuming
key package fetch or a group transition is not repeated here (the stores retry what they
know did not commit). Nothing is acknowledged that the store did not confirm.

While the last client write (a save, a key package, a group event, a consuming fetch)
failed and none has succeeded since, :meth:`GuardedStore.health` reports the store
unhealthy, whatever the backend: reads may work while writes do not. Background sweeps
are not counted; a failing sweep is retried on its next pass. So that an idle relay does
not stay unhealthy once the store is back, ``health`` then tries the store's own write
check (a write that changes no data) at most once every :data:`WRITE_CHECK_INTERVAL`:
its success counts as a successful write.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection
from relay.mls.groups import GroupState
from relay.store.base import (
    GroupTransition,
    KeyPackageSaved,
    MlsStore,
    MlsSweep,
    ServedKeyPackage,
    StoreUnavailable,
)

T = TypeVar("T")
log = logging.getLogger("relay")

DEFAULT_TIMEOUT = 5.0
ATTEMPTS = 3
BACKOFF = 0.1  # seconds before the second attempt, x4 before the third
BACKGROUND_TIMEOUT = 120.0
OPEN_TIMEOUT = 30.0  # a cold connection (TLS, token, JIT) is slower than later calls
# While writes fail, health() tries a write check at most this often (seconds): anyone can
# call /health, and a flood of it must not become a flood of writes.
WRITE_CHECK_INTERVAL = 5.0


class GuardedStore:
    """:class:`MlsStore` that bounds and retries the calls of ``inner``."""

    def __init__(
        self,
        inner: MlsStore,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        write_check_interval: float = WRITE_CHECK_INTERVAL,
    ) -> None:
        self.inner = inner
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        # Startup and sweeps may touch many documents; they get a longer budget.
        self.background_timeout = max(timeout, BACKGROUND_TIMEOUT)
        self.failing: str | None = None  # the last failure, until a call succeeds
        # The last failed write, until a write succeeds: reads (and the inner health
        # check) may still work while writes do not, and /health must say so.
        self.writes_failing: str | None = None
        self.write_check_interval = write_check_interval
        self._write_checked: float | None = None  # when health() last tried a write check
        self._write_checking = False  # one is in flight

    async def _call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        retry: bool = True,
        background: bool = False,
        budget: float | None = None,
        write: bool = False,
    ) -> T:
        """``call()`` within the time budget (the longer one for ``background`` work);
        repeated after StoreUnavailable when ``retry`` and budget remain. Raises
        StoreUnavailable when it cannot succeed. A ``write`` that fails sets
        :attr:`writes_failing`; one that succeeds clears it."""
        if budget is None:
            budget = self.background_timeout if background else self.timeout
        deadline = time.monotonic() + budget
        attempts = self.attempts if retry else 1
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            try:
                # asyncio.timeout, not wait_for: no extra task per store call.
                async with asyncio.timeout(max(remaining, 0.001)):
                    result = await call()
            except TimeoutError:
                self.failing = f"{what} timed out after {budget:g} s"
                if write:
                    self.writes_failing = self.failing
                raise StoreUnavailable(self.failing) from None
            except StoreUnavailable as exc:
                self.failing = f"{what}: {exc}"
                if write:
                    self.writes_failing = self.failing
                pause = self.backoff * 4**attempt
                if attempt + 1 == attempts or time.monotonic() + pause >= deadline:
                    raise
                log.warning("store call failed; retrying", extra={"call": what, "error": str(exc)})
                await asyncio.sleep(pause)
            else:
                self.failing = None
                if write:
                    self.writes_failing = None
                return result
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open ``inner`` within :data:`OPEN_TIMEOUT` (retried: opening has no side
        effects)."""
        await self._call("open", self.inner.open, budget=max(self.timeout, OPEN_TIMEOUT))

    async def close(self) -> None:
        """Close ``inner``."""
        await self.inner.close()

    # --- EventStore --------------------------------------------------------------------

    async def save(self, event: Event, now: int) -> Outcome:
        """Bounded, retried (idempotent by event id)."""
        return await self._call("save", lambda: self.inner.save(event, now), write=True)

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        """Bounded as one :meth:`save` is, for the whole batch; an event that failed is
        retried alone (idempotent by event id) while that budget lasts, the others keep
        their committed outcome."""
        deadline = time.monotonic() + self.timeout
        try:
            results = await self._call(
                "save_many", lambda: self.inner.save_many(events, now), retry=False, write=True
            )
        except StoreUnavailable as exc:
            return [exc] * len(events)
        for i, result in enumerate(results):
            remaining = deadline - time.monotonic()
            if not isinstance(result, StoreUnavailable) or remaining <= 0:
                continue
            await asyncio.sleep(min(self.backoff, remaining))
            try:
                results[i] = await self._call(
                    "save",
                    functools.partial(self.inner.save, events[i], now),
                    budget=remaining,
                    write=True,
                )
            except StoreUnavailable as exc:
                results[i] = exc
        failed = next((r for r in results if isinstance(r, StoreUnavailable)), None)
        if failed is not None:
            self.failing = self.writes_failing = f"save_many: {failed}"
        return results

    async def query(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[Event]:
        """Bounded, retried."""
        return await self._call(
            "query", lambda: self.inner.query(filters, now, oldest_first=oldest_first)
        )

    async def query_raw(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[bytes]:
        """Bounded, retried."""
        return await self._call(
            "query", lambda: self.inner.query_raw(filters, now, oldest_first=oldest_first)
        )

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        """Passed through: it is bounded by construction (it never waits)."""
        return self.inner.query_raw_now(filters, now)

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        """Bounded, retried."""
        return await self._call("count", lambda: self.inner.count(filters, now))

    async def delete_expired(self, now: int) -> int:
        """Bounded, retried."""
        return await self._call(
            "delete_expired", lambda: self.inner.delete_expired(now), background=True
        )

    async def health(self) -> None:
        """Raises StoreUnavailable naming the write failure while the last write failed
        and no write has succeeded since (whatever the backend: reads may still work
        when writes do not); otherwise the inner store's own check, within the budget,
        never retried (the probe is itself repeated by its caller).

        While writes fail, the store's write check is tried first, within the budget and
        not retried, one at a time and at most once every ``write_check_interval``
        however often this is called: when it commits, writes count as working
        again and the inner check follows; when it fails, or was tried too recently,
        this raises naming the write failure."""
        if self.writes_failing is not None:
            await self._check_write()
        await self._call("health", self.inner.health, retry=False)

    async def check_write(self) -> None:
        """The inner store's write check, bounded, not retried; its success clears
        :attr:`writes_failing` (it is a write), its failure sets it."""
        await self._call("write check", self.inner.check_write, retry=False, write=True)

    async def _check_write(self) -> None:
        """Clears :attr:`writes_failing` if a write check now commits; raises
        StoreUnavailable naming the write failure otherwise, or without writing when
        one is in flight or was tried less than ``write_check_interval`` ago."""
        now = time.monotonic()
        last = self._write_checked
        due = last is None or now - last >= self.write_check_interval
        if due and not self._write_checking:
            self._write_checked = now
            self._write_checking = True
            try:
                await self.check_write()
            except StoreUnavailable:
                pass
            finally:
                self._write_checking = False
        if self.writes_failing is not None:
            raise StoreUnavailable(f"writes failing: {self.writes_failing}")

    # --- MlsStore ----------------------------------------------------------------------

    async def save_keypackage(
        self, event: Event, *, expires_at: int, max_per_owner: int, grace: int, now: int
    ) -> KeyPackageSaved:
        """Bounded, retried (idempotent by event id)."""
        return await self._call(
            "save_keypackage",
            lambda: self.inner.save_keypackage(
                event, expires_at=expires_at, max_per_owner=max_per_owner, grace=grace, now=now
            ),
            write=True,
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
        """Bounded; retried only when it consumes nothing."""
        return await self._call(
            "take_keypackages",
            lambda: self.inner.take_keypackages(
                authors, per_author=per_author, consume=consume, now=now, where=where
            ),
            retry=not consume,
            write=consume,
        )

    async def save_group_event(
        self, event: Event, transition: GroupTransition, now: int
    ) -> tuple[Outcome | Rejection, GroupState | None]:
        """Bounded, not retried: a repeat after an unseen commit would report DUPLICATE
        and lose the state change the group directory needs."""
        return await self._call(
            "save_group_event",
            lambda: self.inner.save_group_event(event, transition, now),
            retry=False,
            write=True,
        )

    async def load_groups(self) -> list[GroupState]:
        """Bounded, retried."""
        return await self._call("load_groups", self.inner.load_groups, background=True)

    async def sweep_mls(self, now: int, archive_before: int) -> MlsSweep:
        """Bounded, retried (deleting what is already gone is harmless)."""
        return await self._call(
            "sweep_mls", lambda: self.inner.sweep_mls(now, archive_before), background=True
        )
