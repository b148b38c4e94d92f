"""Two ``mlsgw serve`` processes joined by a real redis-server (cluster mode, R-S2),
sharing one Firestore database (the emulator), as Cloud Run instances do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.process import ServeProcess, base_env, serve_processes
from tests.support.redis_server import RedisServer, redis_server


@dataclass
class Cluster:
    redis: RedisServer
    a: ServeProcess
    b: ServeProcess


@pytest.fixture
async def cluster(tmp_path: Path, firestore: FirestoreEmulator) -> AsyncIterator[Cluster]:
    """Redis plus instances A and B on one emptied emulator database, both ready."""
    async with redis_server(tmp_path / "redis") as redis, serve_processes(tmp_path) as serve:
        instances = []
        for name in ("a", "b"):
            env = {
                **base_env(tmp_path),
                "MLSGW_DATA__PATH": str(tmp_path / f"data-{name}"),
                "MLSGW_DATA__BACKEND": "firestore",
                "MLSGW_DATA__PROJECT_ID": firestore.project,
                "FIRESTORE_EMULATOR_HOST": firestore.host,
                "MLSGW_CLUSTER__REDIS_URL": redis.url,
            }
            instance = await serve(env=env)
            await instance.wait_ready()
            instances.append(instance)
        yield Cluster(redis, instances[0], instances[1])
