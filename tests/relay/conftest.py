"""Fixtures for the relay's process-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.process import StartServe, serve_processes
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[StartServe]:
    """Factory: ``await serve(*args, env=None)`` starts ``mlsgw serve`` on a free port."""
    async with serve_processes(tmp_path) as start:
        yield start


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A real redis-server on a free loopback port, killed after the test."""
    async with redis_server(tmp_path / "redis") as server:
        yield server
