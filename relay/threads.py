"""OS-level names for the relay's worker threads.

Python (before 3.14) names threads only for itself; the kernel still shows every thread
as ``python``. Naming them lets ``top -H``, ``py-spy`` and the benchmark's per-thread CPU
split (``/proc/PID/task/*/comm``) tell the event loop, the SQLite writer, the
checkpointer and the verifiers apart.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

_PR_SET_NAME = 15
_COMM_BYTES = 15  # the kernel keeps 16 bytes, the last one a NUL

_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        path = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(path, use_errno=True) if path else None
    return _libc


def name_os_thread(name: str | None = None) -> None:
    """Set the calling thread's kernel name to ``name`` (default: its Python name),
    cut to 15 bytes. Does nothing where the platform has no such name."""
    libc = _load_libc()
    if libc is None:
        return
    text = name if name is not None else threading.current_thread().name
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(text.encode()[:_COMM_BYTES]), 0, 0, 0)
