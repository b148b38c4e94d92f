"""Fixtures for the bus tests: a real redis-server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server on a free loopback port, killed after the test."""
    async with redis_server(tmp_path / "redis") as server:
        yield server
