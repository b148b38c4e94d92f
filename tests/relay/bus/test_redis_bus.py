"""RedisBus under faults, against a real redis-server: killed, hung (SIGSTOP), back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ReadOnlyError, RedisError, ResponseError

from relay.bus import wire
from relay.bus.base import Bucket, BusUnavailable
from relay.bus.redis_bus import BUNDLE_MAX_BYTES, RedisBus, _bundled, refuses_command
from relay.bus.shared import SharedKindLimiter
from relay.core.ratelimit import KindLimit
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
    async with started_bus(redis, min_backoff=0.05, max_backoff=0.5) as started:
        yield started


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
        assert list(sent) == [False, False, False]
        assert relay_bus.status() == "unhealthy"
    finally:
        redis.resume()
    await until_status(relay_bus, "ok")
    async with started_bus(redis) as (_, other):
        assert await relay_bus.publish_many([b"four", b"five"]) is True
        got: list[bytes] = []
        while len(got) < 2:
            message = await asyncio.wait_for(other.messages.get(), TIMEOUT)
            if message not in (b"one", b"two", b"alone", b"three"):  # sent while hung
                got.append(message)
        assert got == [b"four", b"five"]


@asynccontextmanager
async def started_bus(
    redis: RedisServer,
    *,
    min_backoff: float = 0.1,
    max_backoff: float = 5.0,
    bundle_check_interval: float = 10.0,
    url: str | None = None,
) -> AsyncIterator[tuple[RedisBus, Listener]]:
    listener = Listener()
    bus = RedisBus(
        url or redis.url,
        min_backoff=min_backoff,
        max_backoff=max_backoff,
        bundle_check_interval=bundle_check_interval,
    )
    await bus.start(listener.messages.put_nowait, listener.resync)
    try:
        yield bus, listener
    finally:
        await bus.close()


@asynccontextmanager
async def raw_subscriber(redis: RedisServer, *channels: str) -> AsyncIterator[PubSub]:
    """A plain redis-py subscriber: an instance of another version, or a wiretap."""
    client = Redis.from_url(redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(*channels)
    try:
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def next_data(pubsub: PubSub) -> bytes:
    async def wait() -> bytes:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                return bytes(message["data"])

    return await asyncio.wait_for(wait(), TIMEOUT)


async def test_messages_queued_together_travel_as_one_bundle_and_arrive_in_order(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    sender, own = bus
    async with started_bus(redis) as (receiver, other):
        async with raw_subscriber(redis, sender.channel, sender.bundle_channel) as tap:
            assert await sender.check_bundles() and await receiver.check_bundles()
            assert await sender.publish_many([b"E1", b"E2", b"E3"])
            bundle = await next_data(tap)
            assert wire.is_bundle(bundle) and wire.sent_by(bundle, sender.origin)
            assert wire.unbundle(bundle) == [b"E1", b"E2", b"E3"]
            got = [await asyncio.wait_for(other.messages.get(), TIMEOUT) for _ in range(3)]
            assert got == [b"E1", b"E2", b"E3"]
            assert await receiver.publish(b"after")
            assert await next_data(tap) == b"after"  # one message alone stays plain
    # the sender skipped its own bundle by its header; a plain message still comes back
    assert await asyncio.wait_for(own.messages.get(), TIMEOUT) == b"after"
    assert own.messages.empty()


async def test_a_subscriber_that_reads_no_bundles_keeps_messages_plain(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    sender, _ = bus
    async with raw_subscriber(redis, sender.channel) as older:
        assert not await sender.check_bundles()
        assert await sender.publish_many([b"E1", b"E2"])
        assert [await next_data(older), await next_data(older)] == [b"E1", b"E2"]
    assert await sender.check_bundles()  # it left: bundles again


async def test_the_bus_checks_again_who_reads_bundles_while_it_runs(
    redis: RedisServer,
) -> None:
    async with started_bus(redis, bundle_check_interval=0.1) as (sender, _):
        assert sender.bundles
        async with raw_subscriber(redis, sender.channel) as older:

            async def turned_off() -> None:
                while sender.bundles:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(turned_off(), TIMEOUT)
            assert await sender.publish_many([b"E1", b"E2"])
            assert [await next_data(older), await next_data(older)] == [b"E1", b"E2"]


async def test_an_older_instance_that_subscribes_between_two_counts_misses_nothing(
    redis: RedisServer,
) -> None:
    async with started_bus(redis, bundle_check_interval=3600) as (sender, _):
        assert sender.bundles  # counted once, on subscribing; not again for an hour
        async with raw_subscriber(redis, sender.channel) as older:
            assert await sender.publish_many([b"E1", b"E2", b"E3"])
            got = [await next_data(older) for _ in range(3)]
            assert got == [b"E1", b"E2", b"E3"]
            assert not sender.bundles  # and the next publishes go plain without asking
            assert await sender.publish_many([b"E4", b"E5"])
            assert [await next_data(older), await next_data(older)] == [b"E4", b"E5"]


async def no_scripts_url(redis: RedisServer) -> str:
    """The URL of a user that may do everything but run scripts."""
    admin = Redis.from_url(redis.url)
    try:
        # redis-py leaves Redis.execute_command unannotated.
        await admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting"
        )
    finally:
        await admin.aclose()
    return f"redis://noscripts:pw@127.0.0.1:{redis.port}/0"


async def test_a_redis_that_refuses_the_bundle_script_gets_plain_messages_and_stays_up(
    redis: RedisServer,
) -> None:
    url = await no_scripts_url(redis)
    async with started_bus(redis, url=url) as (sender, _):
        async with raw_subscriber(redis, sender.channel, sender.bundle_channel) as tap:
            assert await sender.check_bundles()  # everyone reads bundles...
            assert await sender.publish_many([b"E1", b"E2"])  # ...but the script is refused
            assert [await next_data(tap), await next_data(tap)] == [b"E1", b"E2"]
            assert await sender.health() == "ok"
            assert not await sender.check_bundles()  # and it does not try again


async def until_busy(client: Redis) -> None:
    """Until Redis answers ``client`` BUSY (a script runs past ``busy-reply-threshold``)."""
    while True:
        try:
            await client.ping()
        except RedisError:
            return
        await asyncio.sleep(0.02)


async def test_a_redis_busy_with_a_long_script_turns_bundles_off_only_until_it_is_over(
    redis: RedisServer,
) -> None:
    """BUSY (someone else's script runs too long) is an outage, not a refusal: the
    publish fails, and once Redis answers again, so do bundles."""
    admin, blocker = Redis.from_url(redis.url), Redis.from_url(redis.url)
    try:
        await admin.config_set("busy-reply-threshold", "50")
        async with started_bus(redis, min_backoff=0.05, max_backoff=0.5) as (sender, _):
            assert await sender.check_bundles()

            async def spin() -> object:
                return await blocker.eval("while true do end", 0)

            spinning = asyncio.create_task(spin())
            await asyncio.wait_for(until_busy(admin), TIMEOUT)
            assert not await sender.publish_many([b"E1", b"E2"])
            await admin.script_kill()
            with pytest.raises(ResponseError):
                await spinning
            await until_status(sender, "ok")
            assert await sender.check_bundles()
    finally:
        await admin.aclose()
        await blocker.aclose()


async def test_a_redis_that_refuses_scripts_leaves_limits_and_lease_per_instance_and_stays_up(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Shared rate limits and the sweeper lease are scripts too: refused, they fall back
    to the instance's own (logged once each) while the bus stays up."""
    url = await no_scripts_url(redis)
    async with started_bus(redis, url=url) as (bus, _):
        for _ in range(2):
            with pytest.raises(BusUnavailable):
                await bus.take([Bucket("notes:{alice}", 1, 3600.0)])
            with pytest.raises(BusUnavailable):
                await bus.lead("sweeper:test", 10.0)
        assert bus.status() == "ok" and await bus.health() == "ok"
        limiter = SharedKindLimiter((KindLimit("notes", 1, 3600.0, frozenset({1})),), bus)
        assert await limiter.check(1, "alice") is None
        assert await limiter.check(1, "alice") == "notes"  # the instance's own bucket
        assert bus.status() == "ok"
    refused = [r for r in caplog.records if r.getMessage().startswith("Redis refuses a script")]
    assert sorted(r.__dict__["script"] for r in refused) == ["lease", "rate limit"]


async def test_a_redis_with_the_script_commands_renamed_away_leaves_limits_and_lease_per_instance(
    tmp_path: Path,
) -> None:
    """``rename-command EVALSHA ""`` (and EVAL): Redis answers "unknown command" to every
    script. Like a refusing ACL, that is no outage: the shared state falls back to the
    instance's own and the bus stays up, instead of being marked lost on every use."""
    renamed = RedisServer(
        tmp_path / "renamed",
        settings=["--rename-command", "EVALSHA", "", "--rename-command", "EVAL", ""],
    )
    await renamed.start()
    try:
        async with started_bus(renamed) as (bus, listener):
            for _ in range(2):
                with pytest.raises(BusUnavailable, match="refuses the script"):
                    await bus.take([Bucket("notes:{alice}", 1, 3600.0)])
                with pytest.raises(BusUnavailable, match="refuses the script"):
                    await bus.lead("sweeper:test", 10.0)
            assert bus.status() == "ok" and await bus.health() == "ok"
            await round_trip(bus, listener, b"still fanning out")
    finally:
        await renamed.stop()


def test_only_a_command_redis_will_not_run_for_this_client_counts_as_refused() -> None:
    assert refuses_command(NoPermissionError("this user has no permissions to run 'evalsha'"))
    assert refuses_command(ResponseError("unknown command 'EVALSHA', with args beginning with:"))
    # Answers that a reconnect or a failover can change are outages, not refusals.
    assert not refuses_command(ReadOnlyError("You can't write against a read only replica."))
    assert not refuses_command(
        ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    )
    assert not refuses_command(RedisConnectionError("Connection refused"))
    assert not refuses_command(OSError("unreachable"))


def test_bundles_stay_under_their_size_and_a_lone_message_stays_plain() -> None:
    origin = "a" * 32
    half = b"x" * (BUNDLE_MAX_BYTES // 2 + 1)
    out = _bundled(origin, [b"s1", b"s2", half, half, b"s3"])
    assert [wire.unbundle(m) for m in out] == [[b"s1", b"s2", half], [half, b"s3"]]
    huge = b"y" * (BUNDLE_MAX_BYTES + 1)
    assert _bundled(origin, [huge, b"s4"]) == [huge, b"s4"]


async def test_a_malformed_bundle_is_skipped_and_the_bus_keeps_receiving(
    bus: tuple[RedisBus, Listener], redis: RedisServer
) -> None:
    receiver, listener = bus
    client = Redis.from_url(redis.url)
    try:
        other = "b" * 32
        await client.publish(receiver.channel, b"B" + other.encode() + b"\x00\x00\x00\x09abc")
        good = wire.encode_bundle(other, [b"E1", b"E2"])
        await client.publish(receiver.channel, good)
    finally:
        await client.aclose()
    got = [await asyncio.wait_for(listener.messages.get(), TIMEOUT) for _ in range(2)]
    assert got == [b"E1", b"E2"]
