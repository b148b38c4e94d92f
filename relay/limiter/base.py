"""The shared rate limiter boundary.

A :class:`Limiter` is one rule (at most ``limit`` actions per ``period`` seconds) applied
to many keys. The in-process implementation is :mod:`relay.limiter.memory`; a cluster
backs the same interface with a shared store so a limit holds across instances.
Implementations translate their own failures into :class:`LimiterUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class LimiterUnavailable(Exception):
    """The limiter's backing store did not answer; nothing was taken."""


class Limiter(Protocol):
    """Token buckets of one rule, keyed by strings."""

    async def acquire(self, keys: Sequence[str], now: float) -> bool:
        """Take one token from the bucket of every key in ``keys``, all or nothing.

        Returns False, taking nothing, when any of them is empty. ``now`` is in seconds
        on the caller's clock (wall clock, so instances agree)."""
        ...

    async def prune(self, now: float) -> int:
        """Forget buckets that have refilled (bounded memory); returns how many."""
        ...
