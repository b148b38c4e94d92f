"""An in-process :class:`~relay.limiter.base.Limiter` (one relay instance)."""

from __future__ import annotations

from collections.abc import Sequence

from relay.core.ratelimit import TokenBucket


class MemoryLimiter:
    """At most ``limit`` actions per ``period`` seconds per key, in this process only."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(float(self.limit), self.limit / self.period)
            self._buckets[key] = bucket
        return bucket

    async def acquire(self, keys: Sequence[str], now: float) -> bool:
        """Take one token from every key's bucket, or none if any is empty."""
        buckets = [self._bucket(key) for key in dict.fromkeys(keys)]
        # A zero-cost take refills the bucket to ``now`` before it is judged.
        if not all(b.take(now, 0.0) and b.tokens >= 1.0 for b in buckets):
            return False
        for bucket in buckets:
            bucket.take(now)
        return True

    async def prune(self, now: float) -> int:
        """Forget buckets that have refilled completely."""
        full = [key for key, bucket in self._buckets.items() if bucket.is_full(now)]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
