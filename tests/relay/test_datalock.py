"""The data-directory lock: exclusive per directory, released on close."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay.datalock import DataDirLock, DataDirLocked


def test_a_second_lock_on_the_same_directory_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    """The second holder gets DataDirLocked with the first one's pid."""
    with DataDirLock(tmp_path / "data"):
        with pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
            DataDirLock(tmp_path / "data").acquire()


def test_the_lock_is_free_again_after_release(tmp_path: Path) -> None:
    """Releasing lets the next relay start; other directories are independent."""
    first = DataDirLock(tmp_path)
    first.acquire()
    with DataDirLock(tmp_path / "other"):
        pass
    first.release()
    first.release()  # idempotent
    with DataDirLock(tmp_path):
        pass
