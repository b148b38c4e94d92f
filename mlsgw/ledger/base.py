"""Where a ledger's bytes live: the interface the hash chain (:mod:`mlsgw.ledger.chain`) uses.

Implementations: :mod:`mlsgw.ledger.local` (a file, appended under ``flock``) and
:mod:`mlsgw.ledger.gcs` (a Cloud Storage object, rewritten under a generation precondition).
They raise only :class:`mlsgw.errors.LedgerError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

LineFor = Callable[[bytes], bytes]
"""Given the ledger's current bytes, the bytes to append (the new line, chained on them)."""


class LedgerStore(Protocol):
    """An append-only byte log with atomic read-then-append."""

    @property
    def location(self) -> str:
        """The path or ``gs://`` URL, for messages and reports."""
        ...

    def read(self) -> bytes:
        """Everything written so far; ``b""`` when nothing is."""
        ...

    def append(self, line_for: LineFor) -> bytes:
        """Append ``line_for(current bytes)`` atomically and return what was appended.

        No other writer's append may land between the read ``line_for`` sees and the write;
        a store that cannot lock calls ``line_for`` again on fresh bytes instead.
        """
        ...
