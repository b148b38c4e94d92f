"""One ``mlsgw serve`` per SQLite data directory: an advisory lock held for the process's life.

Two relays writing one SQLite file would each keep their own in-memory group directory and
fan-out, so the second would silently serve stale membership. The lock makes it refuse instead.
The kernel drops the lock when the process dies (kill -9 included), so no stale lock survives.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = "mlsgw.lock"


class DataDirLocked(Exception):
    """Another process holds the data directory."""


class DataPathUnusable(Exception):
    """The data directory cannot be created or its lock file opened (an OS error)."""


class DataDirLock:
    """An exclusive, non-blocking ``flock`` on ``<directory>/mlsgw.lock``."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`DataDirLocked` naming the holder's pid when it is taken,
        :class:`DataPathUnusable` naming the directory and the OS error when it cannot be
        created or the lock file opened (a file in its place, no permission)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataPathUnusable(
                f"data path {self.path.parent}: cannot create or lock the data directory ({exc})"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirLocked(
                f"another mlsgw serve (pid {holder}) is using the data directory "
                f"{self.path.parent}; stop it or set a different data.path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
