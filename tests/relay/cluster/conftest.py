"""Two ``mlsgw serve`` processes joined by a real redis-server (cluster mode, R-S2).

Both processes use one SQLite file (the same ``data.path`` on this host), so they share
a store the way Cloud Run instances share one Firestore database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.process import ServeProcess, base_env, serve_processes
from tests.support.redis_server import RedisServer, redis_server


@dataclass
class Cluster:
    redis: RedisServer
    a: ServeProcess
    b: ServeProcess


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Redis plus instances A and B, both ready."""
    async with redis_server(tmp_path / "redis") as redis, serve_processes(tmp_path) as serve:
        env = {**base_env(tmp_path), "MLSGW_CLUSTER__REDIS_URL": redis.url}
        a = await serve(env=env)
        await a.wait_ready()
        b = await serve(env=env)
        await b.wait_ready()
        yield Cluster(redis, a, b)
