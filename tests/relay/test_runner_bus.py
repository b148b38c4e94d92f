"""relay.runner's cluster wiring: which bus a config builds, and the sweeper's scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.bus.local import LocalBus
from relay.bus.redis_bus import RedisBus
from relay.runner import UnsupportedBackend, build_bus, store_scope
from tests.conftest import make_config


async def test_without_redis_url_the_bus_is_in_process(tmp_path: Path) -> None:
    bus = build_bus(make_config(tmp_path))
    assert isinstance(bus, LocalBus) and not bus.distributed


async def test_redis_url_builds_the_redis_bus_with_the_configured_prefix(tmp_path: Path) -> None:
    config = make_config(tmp_path, cluster={"redis_url": "redis://10.0.0.3:6379/0", "prefix": "p"})
    bus = build_bus(config)
    try:
        assert isinstance(bus, RedisBus) and bus.distributed
        assert bus.channel == "p:bus"
    finally:
        await bus.close()


def test_an_unusable_redis_url_is_refused_by_name(tmp_path: Path) -> None:
    config = make_config(tmp_path, cluster={"redis_url": "http://10.0.0.3/0"})
    with pytest.raises(UnsupportedBackend, match="cluster.redis_url"):
        build_bus(config)


def test_instances_on_one_sqlite_file_or_one_project_share_the_sweeper_scope(
    tmp_path: Path,
) -> None:
    one, same = make_config(tmp_path / "a"), make_config(tmp_path / "a")
    other = make_config(tmp_path / "b")
    assert store_scope(one) == store_scope(same) != store_scope(other)
    firestore = make_config(tmp_path, data={"backend": "firestore", "project_id": "p1"})
    assert store_scope(firestore) == "firestore:p1/(default)"
