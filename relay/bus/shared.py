"""Limits that hold across instances: shared token buckets and one-time keys on the
bus, each with a per-instance fallback while the bus is unavailable (a limit then holds
per instance, rather than refusing everyone)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from relay.bus.base import Bucket, Bus, BusUnavailable
from relay.core.auth import ReplayGuard
from relay.core.ratelimit import KindLimit, KindRateLimiter, applying, client_key_tuple
from relay.limiter.memory import MemoryLimiter

log = logging.getLogger("relay.bus")


class SharedKindLimiter:
    """:class:`~relay.core.ratelimit.KindRateLimiter` semantics with the buckets on the
    bus, so N instances together allow ``limit`` per period, not N times that."""

    def __init__(
        self,
        rules: tuple[KindLimit, ...],
        bus: Bus,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self.bus = bus
        self.clock = clock
        self.fallback = KindRateLimiter(rules)

    def limits(self, kind: int) -> bool:
        """Whether any rule covers ``kind`` (:meth:`check` of any other kind is None
        without asking the bus)."""
        return bool(self.fallback.rules_for(kind))

    async def check(self, kind: int, client_keys: str | Sequence[str], ip: str = "") -> str | None:
        """Take a token for every rule covering ``kind`` (and not exempting ``ip``) from
        the bucket of every client key (one key, or all a connection is charged under);
        the name of the first rule over its limit, or None. A refused event consumes
        nothing. While the bus is down the instance's own buckets decide (limits then
        hold per instance)."""
        rules = applying(self.fallback.rules_for(kind), ip)
        if not rules:
            return None
        keys = client_key_tuple(client_keys)
        # The hash tag keeps one client's buckets in one Redis Cluster slot; the names are
        # those of a single key's buckets, so instances of any version share them.
        buckets = [Bucket(f"{r.name}:{{{key}}}", r.limit, r.period) for r in rules for key in keys]
        try:
            empty = await self.bus.take(buckets)
        except BusUnavailable:
            return self.fallback.check(kind, keys, self.clock(), ip)
        return None if empty is None else rules[empty // len(keys)].name

    def prune(self) -> None:
        """Forget refilled fallback buckets (bounded memory)."""
        self.fallback.prune(self.clock())


class BusLimiter:
    """A :class:`relay.limiter.base.Limiter` (one rule, many keys) with its buckets on
    the bus, e.g. the key package fetch limit of a cluster."""

    def __init__(self, name: str, limit: int, period: float, bus: Bus) -> None:
        self.name = name
        self.limit = limit
        self.period = period
        self.bus = bus
        self.fallback = MemoryLimiter(limit, period)

    async def acquire(self, keys: Sequence[str], now: float) -> bool:
        """Take one token from every key's bucket on the bus, or none if any is empty;
        the instance's own buckets decide while the bus is down."""
        # One hash tag per rule: a multi-key script stays in one Redis Cluster slot.
        buckets = [
            Bucket(f"{{{self.name}}}:{key}", self.limit, self.period) for key in dict.fromkeys(keys)
        ]
        try:
            return await self.bus.take(buckets) is None
        except BusUnavailable:
            return await self.fallback.acquire(keys, now)

    async def prune(self, now: float) -> int:
        """Forget refilled fallback buckets (the bus expires its own)."""
        return await self.fallback.prune(now)


class SharedReplayGuard:
    """NIP-98: each signed authorization works once across all instances."""

    def __init__(self, bus: Bus, window: int) -> None:
        self.bus = bus
        self.window = window
        self.fallback = ReplayGuard(window)

    async def first_use(self, sig: str, created_at: int, now: int) -> bool:
        """True the first time ``sig`` is presented anywhere (per instance while the bus
        is down). Remembered as long as the event could pass the time window."""
        ttl = max(created_at, now) - now + self.window + 1
        local = self.fallback.first_use(sig, created_at, now)
        try:
            return await self.bus.first_use(f"nip98:{sig}", ttl) and local
        except BusUnavailable:
            return local
