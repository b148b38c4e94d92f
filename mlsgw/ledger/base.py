"""Where a ledger's bytes live: the interface the hash chain (:mod:`mlsgw.ledger.chain`) uses.

Implementations: :mod:`mlsgw.ledger.local` (a file, appended under ``flock``, with a head
record beside it) and :mod:`mlsgw.ledger.gcs` (a Cloud Storage object, rewritten under a
generation precondition, with the head in the object's metadata). They raise only
:class:`mlsgw.errors.LedgerError`.

The *head* anchors the end of the chain: how many lines there are and the hash of the last
one, written with every append. Without it, removing the last line would leave a valid chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

LineFor = Callable[[bytes], bytes]
"""Given the ledger's current bytes, the bytes to append (the new line, chained on them)."""


@dataclass(frozen=True)
class Head:
    """The end of the chain as of the last append."""

    entries: int
    last: str
    """sha256 (hex) of the last line's bytes."""


def head_of(content: bytes) -> Head:
    """The head of a ledger whose bytes are ``content``."""
    lines = [line for line in content.split(b"\n") if line]
    return Head(len(lines), hashlib.sha256(lines[-1]).hexdigest() if lines else "")


class LedgerStore(Protocol):
    """An append-only byte log with atomic read-then-append and a head record."""

    @property
    def location(self) -> str:
        """The path or ``gs://`` URL, for messages and reports."""
        ...

    def exists(self) -> bool:
        """Whether the ledger has been created."""
        ...

    def read(self) -> bytes:
        """Everything written so far; ``b""`` when nothing is."""
        ...

    def read_with_head(self) -> tuple[bytes, Head | None]:
        """The bytes and the head written with them (one consistent read); ``None`` when
        there is no head."""
        ...

    def check_writable(self) -> None:
        """Raise :class:`~mlsgw.errors.LedgerError` naming why an append would fail.

        Called before an action changes anything, so a change is never left unrecorded.
        """
        ...

    def append(self, line_for: LineFor) -> bytes:
        """Append ``line_for(current bytes)`` atomically, update the head, return the line.

        No other writer's append may land between the read ``line_for`` sees and the write;
        a store that cannot lock calls ``line_for`` again on fresh bytes instead.
        """
        ...
