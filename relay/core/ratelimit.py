"""Token buckets for R-A5: per (rule, pubkey-or-IP) event limits and per-connection caps.

Pure: every call takes ``now`` (seconds, monotonic or wall clock, as long as it is
consistent), so tests drive time by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens refilled at ``rate`` tokens per second."""

    capacity: float
    rate: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Consume ``cost`` tokens if available; returns False (and consumes nothing) if not."""
        if self.tokens < 0:
            self.tokens, self.updated = self.capacity, now
        elif now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def is_full(self, now: float) -> bool:
        """True once the bucket has refilled completely (it can then be forgotten)."""
        if self.tokens < 0:
            return True
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


def client_key_tuple(client_keys: str | Sequence[str]) -> tuple[str, ...]:
    """One client key, or several (each once, in order), as a tuple."""
    if isinstance(client_keys, str):
        return (client_keys,)
    return tuple(dict.fromkeys(client_keys))


@dataclass(frozen=True, slots=True)
class KindLimit:
    """At most ``limit`` events of ``kinds`` per ``period`` seconds, per client key."""

    name: str
    limit: int
    period: float
    kinds: frozenset[int]


@dataclass
class KindRateLimiter:
    """Shared by all connections: buckets keyed by (rule name, client key)."""

    rules: tuple[KindLimit, ...]
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    _by_kind: dict[int, tuple[KindLimit, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds = {k for rule in self.rules for k in rule.kinds}
        self._by_kind = {k: tuple(r for r in self.rules if k in r.kinds) for k in kinds}

    def rules_for(self, kind: int) -> tuple[KindLimit, ...]:
        """The rules covering ``kind`` (empty if none: :meth:`check` then passes it)."""
        return self._by_kind.get(kind, ())

    def check(self, kind: int, client_keys: str | Sequence[str], now: float) -> str | None:
        """Take a token for every rule covering ``kind`` from the bucket of every client
        key (one key, or all a connection is charged under); the name of the first rule
        over its limit, or None if the event may pass. A refused event consumes nothing."""
        rules = self._by_kind.get(kind)
        if not rules:
            return None
        keys = client_key_tuple(client_keys)
        buckets = []
        for rule in rules:
            for key in keys:
                bucket = self._buckets.get((rule.name, key))
                if bucket is None:
                    bucket = TokenBucket(float(rule.limit), rule.limit / rule.period)
                    self._buckets[(rule.name, key)] = bucket
                if not bucket.take(now, 0.0) or bucket.tokens < 1.0:
                    return rule.name
                buckets.append(bucket)
        for bucket in buckets:
            bucket.take(now)
        return None

    def prune(self, now: float) -> int:
        """Forget buckets that have refilled (bounded memory); returns how many were dropped."""
        full = [key for key, bucket in self._buckets.items() if bucket.is_full(now)]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
