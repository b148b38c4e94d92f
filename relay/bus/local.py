"""The in-process bus: one instance (no ``cluster.redis_url``), or several relays in one
process sharing a :class:`LocalHub` (how the bus contract is tested without Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

from relay.bus.base import Bucket, BusStatus, Receiver, Resync
from relay.core.ratelimit import TokenBucket

# Full buckets and expired one-time keys are dropped at most this often (seconds), so
# memory follows the request rate without a sweep on every call.
PRUNE_INTERVAL = 60.0


class LocalHub:
    """What the buses of one process share: receivers, buckets, one-time keys, leases."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.receivers: list[Receiver] = []
        self.buckets: dict[str, TokenBucket] = {}
        self.used: dict[str, float] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self._pruned = clock()

    def now(self) -> float:
        """The hub's clock, forgetting what is no longer needed once per interval."""
        now = self.clock()
        if now - self._pruned >= PRUNE_INTERVAL:
            self._pruned = now
            for key in [k for k, b in self.buckets.items() if b.is_full(now)]:
                del self.buckets[key]
            for key in [k for k, expires in self.used.items() if expires <= now]:
                del self.used[key]
        return now


class LocalBus:
    """:class:`relay.bus.base.Bus` inside one process; never unavailable."""

    distributed = False

    def __init__(self, hub: LocalHub | None = None) -> None:
        self.hub = hub or LocalHub()
        self.origin = uuid.uuid4().hex
        self._receiver: Receiver | None = None

    async def start(self, receive: Receiver, resync: Resync) -> None:
        """Register ``receive`` with the hub (``resync`` is never needed in-process)."""
        self._receiver = receive
        self.hub.receivers.append(receive)

    def reaches_others(self) -> bool:
        """Whether another bus of this hub has a receiver (never, in a single-instance
        relay)."""
        return any(receive is not self._receiver for receive in self.hub.receivers)

    async def publish(self, message: bytes) -> bool:
        """Hand ``message`` to the hub's other receivers on the next loop iteration (alone
        in its hub, as in a single-instance relay, this costs nothing)."""
        loop = asyncio.get_running_loop()
        for receive in self.hub.receivers:
            if receive is not self._receiver:
                loop.call_soon(receive, message)
        return True

    async def publish_many(self, messages: Sequence[bytes]) -> bool:
        """:meth:`publish` each of ``messages``, in order."""
        for message in messages:
            await self.publish(message)
        return True

    async def take(self, buckets: Sequence[Bucket]) -> int | None:
        """Token buckets in memory (see :meth:`relay.bus.base.Bus.take`)."""
        now = self.hub.now()
        found = []
        for index, spec in enumerate(buckets):
            bucket = self.hub.buckets.get(spec.key)
            if bucket is None:
                bucket = TokenBucket(float(spec.capacity), spec.capacity / spec.period)
                self.hub.buckets[spec.key] = bucket
            if not bucket.take(now, 0.0) or bucket.tokens < 1.0:
                return index
            found.append(bucket)
        for bucket in found:
            bucket.take(now)
        return None

    async def first_use(self, key: str, ttl: int) -> bool:
        """One-time keys in memory (see :meth:`relay.bus.base.Bus.first_use`)."""
        now = self.hub.now()
        expires = self.hub.used.get(key)
        if expires is not None and expires > now:
            return False
        self.hub.used[key] = now + ttl
        return True

    async def lead(self, role: str, ttl: float) -> bool:
        """Leases in memory (see :meth:`relay.bus.base.Bus.lead`)."""
        now = self.hub.now()
        holder = self.hub.leases.get(role)
        if holder is not None and holder[0] != self.origin and holder[1] > now:
            return False
        self.hub.leases[role] = (self.origin, now + ttl)
        return True

    def status(self) -> BusStatus:
        """Always ``disabled``: there is no cluster bus."""
        return "disabled"

    async def health(self) -> BusStatus:
        """Always ``disabled``."""
        return "disabled"

    async def close(self) -> None:
        """Leave the hub."""
        if self._receiver is not None and self._receiver in self.hub.receivers:
            self.hub.receivers.remove(self._receiver)
        self._receiver = None
