"""A ledger in a local file, appended under an exclusive ``flock``, its head in ``<file>.head``."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict
from pathlib import Path

from mlsgw.errors import LedgerError
from mlsgw.ledger.base import Head, LineFor, head_of


class LocalLedgerStore:
    """:class:`~mlsgw.ledger.base.LedgerStore` over a file; parent directories are created."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")

    @property
    def location(self) -> str:
        """The file's path."""
        return str(self.path)

    def exists(self) -> bool:
        """The file exists."""
        return self.path.exists()

    def read(self) -> bytes:
        """The file's bytes; ``b""`` when it does not exist."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc

    def read_with_head(self) -> tuple[bytes, Head | None]:
        """The file's bytes and its head record, read under a shared lock (no append between)."""
        try:
            with open(self.path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH)
                data = handle.read()
                raw = self.head_path.read_bytes() if self.head_path.exists() else None
        except FileNotFoundError:
            return b"", None
        except OSError as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        if raw is None:
            return data, None
        try:
            record = json.loads(raw)
            return data, Head(int(record["entries"]), str(record["last"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"unreadable head record {self.head_path}: {exc}") from exc

    def check_writable(self) -> None:
        """The file (or its directory, created if needed) and the head can be written."""
        try:
            if self.path.exists():
                with open(self.path, "ab"):
                    pass
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not os.access(self.path.parent, os.W_OK | os.X_OK):
                    raise PermissionError(f"directory {self.path.parent} is not writable")
            if self.head_path.exists():
                with open(self.head_path, "ab"):
                    pass
        except OSError as exc:
            raise LedgerError(f"the ledger {self.path} cannot be written: {exc}") from exc

    def append(self, line_for: LineFor) -> bytes:
        """Read and append under one exclusive lock, fsync, then replace the head record."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.seek(0)
                current = handle.read()
                line = line_for(current)
                handle.seek(0, os.SEEK_END)
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
                self._write_head(head_of(current + line))
        except OSError as exc:
            raise LedgerError(f"cannot append to the ledger {self.path}: {exc}") from exc
        return line

    def _write_head(self, head: Head) -> None:
        scratch = self.head_path.with_name(self.head_path.name + ".tmp")
        scratch.write_text(json.dumps(asdict(head)) + "\n")
        os.replace(scratch, self.head_path)
