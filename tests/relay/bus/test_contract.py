"""The bus contract, run against every implementation: two buses stand for two
instances (a shared in-process hub, or one real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.bus.base import Bucket, Bus
from relay.bus.local import LocalBus, LocalHub
from relay.bus.redis_bus import RedisBus
from tests.support.redis_server import redis_server

TIMEOUT = 5.0


@dataclass
class Instance:
    bus: Bus
    received: asyncio.Queue[bytes]


async def _nothing() -> None:
    return None


@pytest.fixture(params=["local", "redis"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two started buses that reach each other."""
    async with AsyncExitStack() as stack:
        if request.param == "local":
            hub = LocalHub()
            make: Callable[[], Bus] = lambda: LocalBus(hub)  # noqa: E731
        else:
            server = await stack.enter_async_context(redis_server(tmp_path / "redis"))
            make = lambda: RedisBus(server.url)  # noqa: E731
        async for instances in _started(make):
            yield instances


async def _started(make: Callable[[], Bus]) -> AsyncIterator[tuple[Instance, Instance]]:
    instances = []
    for _ in range(2):
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        bus = make()
        await bus.start(queue.put_nowait, _nothing)
        instances.append(Instance(bus, queue))
    yield instances[0], instances[1]
    for instance in instances:
        await instance.bus.close()


async def test_a_published_message_reaches_the_other_instance_unchanged(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    message = b"E" + a.bus.origin.encode() + b"{}"
    assert await a.bus.publish(message)
    assert await asyncio.wait_for(b.received.get(), TIMEOUT) == message


async def test_each_instance_knows_its_messages_can_reach_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    assert all(instance.bus.reaches_others() for instance in pair)


async def test_messages_from_one_instance_arrive_in_order(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    for n in range(50):
        assert await a.bus.publish(str(n).encode())
    got = [await asyncio.wait_for(b.received.get(), TIMEOUT) for _ in range(50)]
    assert got == [str(n).encode() for n in range(50)]


async def test_messages_published_together_arrive_whole_and_in_order(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    assert await a.bus.publish_many([]) is True
    sent = [b"first", *(str(n).encode() for n in range(48)), b"last"]
    assert await a.bus.publish_many(sent) is True
    got = [await asyncio.wait_for(b.received.get(), TIMEOUT) for _ in sent]
    assert got == sent


async def test_concurrent_publishers_all_arrive_each_in_its_own_order(
    pair: tuple[Instance, Instance],
) -> None:
    """Many tasks publishing at once (as connections do): every message arrives once, and
    each task's messages in the order it sent them."""
    a, b = pair

    async def one_by_one(name: str) -> list[bool]:
        return [await a.bus.publish(f"{name}-{n:02}".encode()) for n in range(20)]

    async def in_fours(name: str) -> list[bool]:
        sent = []
        for n in range(0, 20, 4):
            batch = [f"{name}-{k:02}".encode() for k in range(n, n + 4)]
            sent.append(await a.bus.publish_many(batch))
        return sent

    names = ["p0", "p1", "p2", "p3", "q0", "q1"]
    results = await asyncio.gather(
        *(one_by_one(name) for name in names[:4]), *(in_fours(name) for name in names[4:])
    )
    assert all(all(outcome) for outcome in results)
    got = [await asyncio.wait_for(b.received.get(), TIMEOUT) for _ in range(len(names) * 20)]
    for name in names:
        assert [m for m in got if m.startswith(f"{name}-".encode())] == [
            f"{name}-{n:02}".encode() for n in range(20)
        ]
    await asyncio.sleep(0.1)
    assert b.received.empty()


async def test_each_instance_has_its_own_origin(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    assert len(a.bus.origin) == 32 and a.bus.origin != b.bus.origin


async def test_token_buckets_are_shared_between_instances(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    bucket = [Bucket("rule:{alice}", 3, 3600.0)]
    results = [await a.bus.take(bucket), await b.bus.take(bucket), await a.bus.take(bucket)]
    assert results == [None, None, None]
    assert await b.bus.take(bucket) == 0
    assert await a.bus.take([Bucket("rule:{bob}", 3, 3600.0)]) is None


async def test_a_refused_take_consumes_nothing_from_the_other_buckets(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    wide = Bucket("wide:{carol}", 10, 3600.0)
    narrow = Bucket("narrow:{carol}", 1, 3600.0)
    assert await a.bus.take([wide, narrow]) is None
    for _ in range(3):
        assert await b.bus.take([wide, narrow]) == 1
    # wide lost one token only: nine more single takes pass, the tenth does not
    for _ in range(9):
        assert await a.bus.take([wide]) is None
    assert await a.bus.take([wide]) == 0


async def test_a_bucket_refills_at_its_rate(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    bucket = [Bucket("fast:{dave}", 1, 0.2)]
    assert await a.bus.take(bucket) is None
    assert await b.bus.take(bucket) == 0

    async def refilled() -> None:
        while await b.bus.take(bucket) is not None:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(refilled(), TIMEOUT)


async def test_a_one_time_key_works_once_across_instances(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    assert await a.bus.first_use("sig1", 60)
    assert not await b.bus.first_use("sig1", 60)
    assert not await a.bus.first_use("sig1", 60)
    assert await b.bus.first_use("sig2", 60)


async def test_one_time_keys_are_forgotten_after_their_ttl(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    assert await a.bus.first_use("short", 1)

    async def forgotten() -> None:
        while not await b.bus.first_use("short", 1):
            await asyncio.sleep(0.1)

    await asyncio.wait_for(forgotten(), TIMEOUT)


async def test_one_instance_holds_a_lease_until_it_expires(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    assert await a.bus.lead("sweeper:db", 0.5)
    assert not await b.bus.lead("sweeper:db", 0.5)
    assert await a.bus.lead("sweeper:db", 0.5)  # renewal by the holder
    assert await b.bus.lead("sweeper:other-db", 0.5)

    async def taken_over() -> None:
        while not await b.bus.lead("sweeper:db", 60):
            await asyncio.sleep(0.1)

    await asyncio.wait_for(taken_over(), TIMEOUT)
    assert not await a.bus.lead("sweeper:db", 60)


async def test_the_in_process_hub_forgets_refilled_buckets_and_expired_keys() -> None:
    now = [1000.0]
    hub = LocalHub(clock=lambda: now[0])
    bus = LocalBus(hub)
    assert await bus.take([Bucket("k", 1, 10.0)]) is None
    assert await bus.first_use("sig", 5)
    assert len(hub.buckets) == 1 and len(hub.used) == 1
    now[0] += 3600.0
    assert await bus.first_use("other", 5)  # any call past the interval prunes
    assert list(hub.used) == ["other"] and hub.buckets == {}


async def test_an_in_process_bus_reaches_others_only_while_another_shares_its_hub() -> None:
    hub = LocalHub()
    alone = LocalBus(hub)
    await alone.start(lambda message: None, _nothing)
    assert not alone.reaches_others()
    other = LocalBus(hub)
    await other.start(lambda message: None, _nothing)
    assert alone.reaches_others() and other.reaches_others()
    await other.close()
    assert not alone.reaches_others()
    await alone.close()
