"""relay.limiter.memory: the in-process limiter behind the shared Limiter interface."""

from __future__ import annotations

from relay.limiter.base import Limiter
from relay.limiter.memory import MemoryLimiter


def limiter(limit: int = 2, period: float = 60.0) -> Limiter:
    return MemoryLimiter(limit, period)


async def test_each_key_gets_limit_actions_per_period() -> None:
    """Two per minute: the third is refused; another key has its own budget."""
    lim = limiter()
    assert [await lim.acquire(["a"], 0.0) for _ in range(3)] == [True, True, False]
    assert await lim.acquire(["b"], 0.0) is True


async def test_tokens_refill_over_the_period() -> None:
    """After half the period one token is back (2 per 60 s = 1 per 30 s)."""
    lim = limiter()
    await lim.acquire(["a"], 0.0)
    await lim.acquire(["a"], 0.0)
    assert await lim.acquire(["a"], 29.0) is False
    assert await lim.acquire(["a"], 31.0) is True


async def test_several_keys_are_taken_all_or_nothing() -> None:
    """An action charged to two identities passes only if both have a token, and a
    refusal takes nothing from either."""
    lim = limiter(limit=1)
    assert await lim.acquire(["a"], 0.0) is True
    assert await lim.acquire(["a", "b"], 0.0) is False
    assert await lim.acquire(["b"], 0.0) is True
    assert await lim.acquire(["c", "c"], 0.0) is True  # a repeated key is charged once


async def test_prune_forgets_refilled_buckets_only() -> None:
    """Memory stays bounded: buckets that refilled are dropped, busy ones kept."""
    lim = MemoryLimiter(1, 10.0)
    await lim.acquire(["old"], 0.0)
    await lim.acquire(["busy"], 9.0)
    assert await lim.prune(10.0) == 1 and len(lim) == 1
    assert await lim.acquire(["busy"], 10.0) is False
