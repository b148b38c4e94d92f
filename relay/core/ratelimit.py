"""Token buckets for R-A5: per (rule, pubkey-or-IP) event limits and per-connection caps.

Pure: every call takes ``now`` (seconds, monotonic or wall clock, as long as it is
consistent), so tests drive time by hand.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


KindRange = tuple[int, int]
"""Kinds from ``start`` (included) to ``end`` (excluded), as rnostr's ``[[0, 10000]]``."""


def kind_covered(kind: int, kinds: Collection[int], ranges: Sequence[KindRange]) -> bool:
    """Whether a rule of ``kinds`` and ``ranges`` limits ``kind``: one of them holds it,
    or the rule names none at all (every kind, as in rnostr)."""
    if not kinds and not ranges:
        return True
    return kind in kinds or any(start <= kind < end for start, end in ranges)


@dataclass(frozen=True, slots=True)
class KindLimit:
    """At most ``limit`` events of ``kinds`` (and of ``ranges``; neither given: of every
    kind, as in rnostr) per ``period`` seconds, per client key; clients whose IP is in
    ``exempt`` are not limited by it."""

    name: str
    limit: int
    period: float
    kinds: frozenset[int]
    ranges: tuple[KindRange, ...] = ()
    exempt: tuple[IpNetwork, ...] = ()

    def covers(self, kind: int) -> bool:
        """Whether this rule limits ``kind``."""
        return kind_covered(kind, self.kinds, self.ranges)

    def exempts(self, ip: str) -> bool:
        """Whether a client at ``ip`` is outside this rule (rnostr's per-rule
        ``ip_whitelist``)."""
        if not self.exempt:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.exempt)


def applying(rules: Sequence[KindLimit], ip: str) -> tuple[KindLimit, ...]:
    """``rules`` less those that exempt a client at ``ip``."""
    return tuple(r for r in rules if not r.exempts(ip))


@dataclass
class KindRateLimiter:
    """Shared by all connections: buckets keyed by (rule name, client key)."""

    rules: tuple[KindLimit, ...]
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    # Which rules cover a kind, worked out on first sight of the kind (there are at most
    # 65,536 kinds, and a relay sees a few).
    _by_kind: dict[int, tuple[KindLimit, ...]] = field(default_factory=dict)

    def rules_for(self, kind: int) -> tuple[KindLimit, ...]:
        """The rules covering ``kind`` (empty if none: :meth:`check` then passes it)."""
        rules = self._by_kind.get(kind)
        if rules is None:
            rules = self._by_kind[kind] = tuple(r for r in self.rules if r.covers(kind))
        return rules

    def check(
        self, kind: int, client_keys: str | Sequence[str], now: float, ip: str = ""
    ) -> str | None:
        """Take a token for every rule covering ``kind`` (and not exempting ``ip``) from
        the bucket of every client key (one key, or all a connection is charged under);
        the name of the first rule over its limit, or None if the event may pass. A
        refused event consumes nothing."""
        rules = applying(self.rules_for(kind), ip)
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
