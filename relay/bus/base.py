"""The bus boundary (R-S2): what a relay instance needs from the other instances.

Two implementations: :mod:`relay.bus.local` (one instance, in-process) and
:mod:`relay.bus.redis_bus` (cluster mode, ``cluster.redis_url``). Besides carrying
messages (:mod:`relay.bus.wire`) a bus keeps the little state that must be shared for
limits to hold across instances: token buckets, one-time keys, a leader lease.

Exceptions::

    BusError
     └── BusUnavailable   the bus did not answer; the caller falls back to local state
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

BusStatus = Literal["ok", "disabled", "unhealthy"]
Receiver = Callable[[bytes], None]
Resync = Callable[[], Awaitable[None]]


class BusError(Exception):
    """Root of the bus's exceptions."""


class BusUnavailable(BusError):
    """The bus failed or did not answer in time."""


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled completely over ``period`` seconds."""

    key: str
    capacity: int
    period: float


class Bus(Protocol):
    """Messages between instances plus shared counters. Coroutine-safe."""

    origin: str
    """This instance's id (32 hex digits): messages it sent come back with it."""

    distributed: bool
    """True when other processes share this bus (limits must then live on it)."""

    def reaches_others(self) -> bool:
        """Whether a message published now could reach another instance. False only when
        none can (an in-process bus alone in its hub): the caller may then skip building
        and publishing messages that nobody would receive."""
        ...

    async def start(self, receive: Receiver, resync: Resync) -> None:
        """Start receiving: ``receive`` gets every message the other instances publish
        (and maybe this one's own: the caller skips those by origin). ``resync`` is awaited
        after each reconnection, once messages flow again, to reload what may have been
        missed meanwhile. Returns even if the bus is down (it keeps reconnecting)."""
        ...

    async def publish(self, message: bytes) -> bool:
        """Send ``message`` to every instance. True once the bus has taken it; False
        when the bus is down (the caller delivers locally only). Never raises."""
        ...

    async def publish_many(self, messages: Sequence[bytes]) -> bool:
        """:meth:`publish` each of ``messages``, in order, in one exchange with the bus.
        True once the bus has taken them all; False when it is down or failed part-way
        (some may have gone out: the caller delivers all of them locally). Never raises."""
        ...

    async def take(self, buckets: Sequence[Bucket]) -> int | None:
        """Take one token from every bucket, atomically: None if all had one, else the
        index of the first empty bucket (and nothing is taken). Raises
        :class:`BusUnavailable`."""
        ...

    async def first_use(self, key: str, ttl: int) -> bool:
        """True the first time ``key`` is presented within ``ttl`` seconds, on any
        instance. Raises :class:`BusUnavailable`."""
        ...

    async def lead(self, role: str, ttl: float) -> bool:
        """Hold (or renew) the lease on ``role`` for ``ttl`` seconds; True if this
        instance holds it. Raises :class:`BusUnavailable`."""
        ...

    def status(self) -> BusStatus:
        """What the bus is doing now, without I/O."""
        ...

    async def health(self) -> BusStatus:
        """``ok`` only if the bus answers now; ``disabled`` when there is no bus."""
        ...

    async def close(self) -> None:
        """Stop receiving and release connections."""
        ...
