"""A ledger in a local file, appended under an exclusive ``flock``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mlsgw.errors import LedgerError
from mlsgw.ledger.base import LineFor


class LocalLedgerStore:
    """:class:`~mlsgw.ledger.base.LedgerStore` over a file; parent directories are created."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def location(self) -> str:
        """The file's path."""
        return str(self.path)

    def read(self) -> bytes:
        """The file's bytes; ``b""`` when it does not exist."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc

    def append(self, line_for: LineFor) -> bytes:
        """Read and append under one exclusive lock, then fsync."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.seek(0)
                line = line_for(handle.read())
                handle.seek(0, os.SEEK_END)
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise LedgerError(f"cannot append to the ledger {self.path}: {exc}") from exc
        return line
