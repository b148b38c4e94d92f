"""A bounded memory of recently seen ids (pure).

Fan-out uses it so an event reaching an instance twice (from its own client and back
from the bus, or published on two instances at once) is delivered once.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """The last ``capacity`` distinct ids added; the oldest is forgotten first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> bool:
        """Remember ``item``; True if it was not among the remembered ids."""
        if item in self._ids:
            return False
        self._ids[item] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)
