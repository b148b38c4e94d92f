"""RecentIds: the bounded memory behind "fanned out once"."""

from __future__ import annotations

import pytest

from relay.core.recent import RecentIds


def test_an_id_is_new_only_the_first_time() -> None:
    recent = RecentIds(3)
    assert recent.add("a") is True
    assert recent.add("a") is False
    assert "a" in recent and "b" not in recent


def test_the_oldest_id_is_forgotten_beyond_capacity() -> None:
    recent = RecentIds(2)
    for item in ("a", "b", "c"):
        assert recent.add(item)
    assert len(recent) == 2
    assert "a" not in recent
    assert recent.add("a") is True
    assert "b" not in recent and "c" in recent


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentIds(0)
