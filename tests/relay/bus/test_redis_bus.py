"""RedisBus under faults, against a real redis-server: killed, hung (SIGSTOP), back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from relay.bus.base import Bucket, BusUnavailable
from relay.bus.redis_bus import RedisBus
from tests.support.redis_server import RedisServer

TIMEOUT = 20.0  # failure guard only; the box is shared


class Listener:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self.resyncs = 0

    async def resync(self) -> None:
        self.resyncs += 1


@pytest.fixture
async def bus(redis: RedisServer) -> AsyncIterator[tuple[RedisBus, Listener]]:
    listener = Listener()
    bus = RedisBus(redis.url, min_backoff=0.05, max_backoff=0.5)
    await bus.start(listener.messages.put_nowait, listener.resync)
    yield bus, listener
    await bus.close()


async def until_status(bus: RedisBus, wanted: str) -> None:
    async def poll() -> None:
        while await bus.health() != wanted:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), TIMEOUT)


async def round_trip(bus: RedisBus, listener: Listener, payload: bytes) -> None:
    assert await bus.publish(payload)
    assert await asyncio.wait_for(listener.messages.get(), TIMEOUT) == payload


async def test_a_killed_redis_is_reported_and_publishing_falls_back_at_once(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    relay_bus, listener = bus
    assert relay_bus.status() == "ok" and await relay_bus.health() == "ok"
    await redis.stop()
    await until_status(relay_bus, "unhealthy")
    assert relay_bus.status() == "unhealthy"
    assert await relay_bus.publish(b"lost") is False
    assert await relay_bus.publish_many([b"lost", b"too"]) is False
    with pytest.raises(BusUnavailable):
        await relay_bus.take([Bucket("k", 1, 60.0)])
    with pytest.raises(BusUnavailable):
        await relay_bus.first_use("sig", 60)
    with pytest.raises(BusUnavailable):
        await relay_bus.lead("sweeper", 60.0)


async def test_the_bus_reconnects_resyncs_once_and_carries_messages_again(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    relay_bus, listener = bus
    assert listener.resyncs == 0
    await redis.stop()
    await until_status(relay_bus, "unhealthy")
    await redis.start()
    await until_status(relay_bus, "ok")
    await round_trip(relay_bus, listener, b"after")
    assert listener.resyncs == 1
    assert relay_bus.reconnects == 1


async def test_a_hung_redis_is_unhealthy_within_the_timeout_and_recovers(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    relay_bus, listener = bus
    redis.pause()
    try:
        await until_status(relay_bus, "unhealthy")
        assert await relay_bus.publish(b"while hung") is False
    finally:
        redis.resume()
    await until_status(relay_bus, "ok")
    await round_trip(relay_bus, listener, b"after the hang")


async def test_a_bus_started_while_redis_is_down_connects_when_it_comes_up(
    redis: RedisServer,
) -> None:
    await redis.stop()
    listener = Listener()
    relay_bus = RedisBus(redis.url, min_backoff=0.05, max_backoff=0.5)
    await asyncio.wait_for(relay_bus.start(listener.messages.put_nowait, listener.resync), TIMEOUT)
    try:
        assert relay_bus.status() == "unhealthy"
        await redis.start()
        await until_status(relay_bus, "ok")
        await round_trip(relay_bus, listener, b"first")
    finally:
        await relay_bus.close()


async def test_messages_published_together_to_a_hung_redis_answer_false_in_time(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    """A pipeline Redis stops answering mid-way: False after the bus timeout (the
    relay then fans out locally), the bus is marked down, and it carries batches again
    once Redis is back."""
    relay_bus, listener = bus
    redis.pause()
    try:
        sent = await asyncio.wait_for(
            asyncio.gather(
                relay_bus.publish_many([b"one", b"two"]),
                relay_bus.publish(b"alone"),
                relay_bus.publish_many([b"three"]),
            ),
            TIMEOUT,
        )
        assert sent == [False, False, False]
        assert relay_bus.status() == "unhealthy"
    finally:
        redis.resume()
    await until_status(relay_bus, "ok")
    assert await relay_bus.publish_many([b"four", b"five"]) is True
    got: list[bytes] = []
    while len(got) < 2:
        message = await asyncio.wait_for(listener.messages.get(), TIMEOUT)
        if message not in (b"one", b"two", b"alone", b"three"):  # what it read while hung
            got.append(message)
    assert got == [b"four", b"five"]
