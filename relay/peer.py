"""A connection as the relay application sees it (the server implements it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from relay.core.session import Session


class Peer(Protocol):
    """A connection as the application sees it."""

    session: Session

    def send(self, data: bytes) -> None:
        """Queue a frame for the client (never blocks; drops the client if it is too slow)."""
        ...

    def send_many(self, frames: Iterable[bytes]) -> None:
        """Queue several frames at once (one write)."""
        ...

    async def drain(self) -> None:
        """Return once the client has read enough of what is queued, or has gone."""
        ...

    @property
    def is_open(self) -> bool:
        """False once the connection is closing."""
        ...
