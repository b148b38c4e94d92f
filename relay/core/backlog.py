"""When a connection's unsent data means it has stopped reading (R-P7), as pure decisions.

A client that keeps reading is never dropped, however far behind a burst leaves it, up
to a hard cap per connection. Below the high-water mark nothing is watched; above it,
the connection must make progress (bytes leaving the relay's buffer for the kernel)
at least once every ``stall_timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class BacklogLimits:
    """``[network]`` send-buffer settings, in bytes and seconds."""

    high_water: int
    stall_timeout: float
    hard_cap: int
    total_cap: int


class Backlog:
    """Progress tracking for one connection's send buffer."""

    def __init__(self, limits: BacklogLimits) -> None:
        self.limits = limits
        self._mark = 0
        self._since: float | None = None

    def over_cap(self, buffered: int) -> str | None:
        """The reason to drop now if ``buffered`` bytes pass the hard cap, else None."""
        cap = self.limits.hard_cap
        if buffered > cap:
            return f"unsent data passed network.max_send_buffer ({cap} bytes)"
        return None

    def check(self, now: float, written: int, buffered: int) -> str | None:
        """The reason to drop the connection, or None to keep it.

        ``written`` is every byte ever handed to the transport and ``buffered`` what it
        still holds, so ``written - buffered`` grows exactly when the client reads.
        """
        reason = self.over_cap(buffered)
        if reason is not None:
            return reason
        if buffered <= self.limits.high_water:
            self._since = None
            return None
        sent = written - buffered
        if self._since is None or sent > self._mark:
            self._mark, self._since = sent, now
            return None
        if now - self._since >= self.limits.stall_timeout:
            return (
                f"no progress above {self.limits.high_water} unsent bytes for"
                f" network.slow_consumer_timeout ({self.limits.stall_timeout:g} s)"
            )
        return None


def over_total(buffered: Iterable[tuple[K, int]], total_cap: int) -> list[K]:
    """Connections to drop, largest backlog first, until the rest fit in ``total_cap``."""
    ordered = sorted(buffered, key=lambda item: item[1], reverse=True)
    total = sum(size for _, size in ordered)
    dropped: list[K] = []
    for key, size in ordered:
        if total <= total_cap:
            break
        dropped.append(key)
        total -= size
    return dropped
