"""The interface of a notice channel (a chat webhook today)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Delivery:
    """How sending one notice went."""

    ok: bool
    detail: str
    """``HTTP 200`` or why it failed (no secret URL in it)."""


class Notifier(Protocol):
    """Sends a plain-text notice; never raises: failures come back as a :class:`Delivery`."""

    @property
    def where(self) -> str:
        """Where notices go, for people (a URL without its secret path)."""
        ...

    def send(self, text: str) -> Delivery: ...
