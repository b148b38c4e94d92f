"""Limits that must hold across instances (R-S2): two relays in this process on one real
redis-server and one store, as two instances would be."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from relay.bus.redis_bus import RedisBus
from relay.config import RateRule
from relay.core.event import Event
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.http import http_request
from tests.support.nip98 import auth_event, header
from tests.support.nostr import Keys, RawClient, RelayClient, lower_than
from tests.support.redis_server import RedisServer

RELAY_URL = "ws://relay.test"


async def two_instances(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer, **sections: dict[str, Any]
) -> tuple[RunningRelay, RunningRelay]:
    config = make_config(
        tmp_path / "data",
        information={"relay_url": RELAY_URL},
        cluster={"redis_url": redis.url},
        **sections,
    )
    a = await start_relay(config, bus=RedisBus(redis.url))
    b = await start_relay(config, bus=RedisBus(redis.url))
    return a, b


async def authed(running: RunningRelay, keys: Keys) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys, RELAY_URL))[2] is True
    return client


def keypackage(owner: Keys, n: int) -> Event:
    return owner.sign(443, f"{n:08x}", [], created_at=int(time.time()) - n)


async def test_an_event_rate_limit_counts_events_on_every_instance(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    a, b = await two_instances(
        start_relay, tmp_path, redis, rate_limiter={"event": (RateRule("notes", 2, 3600.0, (1,)),)}
    )
    alice = Keys()
    client_a, client_b = await authed(a, alice), await authed(b, alice)
    assert (await client_a.publish(alice.sign(1, "one")))[2] is True
    assert (await client_b.publish(alice.sign(1, "two")))[2] is True
    third = alice.sign(1, "three")
    assert await client_a.publish(third) == ["OK", third.id, False, "rate-limited: notes"]
    registry = a.relay.metrics.registry
    assert registry.get_sample_value("nostr_relay_rate_limited_total", {"name": "notes"}) == 1
    assert (await client_b.publish(alice.sign(7, "other kind")))[2] is True
    bob = await authed(b, Keys())
    assert (await bob.publish(Keys().sign(1, "another client")))[2] is True


async def test_an_extra_key_gives_no_fresh_bucket_on_any_instance(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    """With an allowlist the shared buckets are the listed identity's: after alice spends
    hers on one instance, a connection to the other that also holds an unlisted lower key
    is refused for an event signed with that key, and the refusal takes nothing from
    bob, whose key the same connection holds too."""
    alice, bob = Keys(), Keys()
    a, b = await two_instances(
        start_relay,
        tmp_path,
        redis,
        auth={"pubkey_whitelist": (alice.pubkey, bob.pubkey)},
        rate_limiter={"event": (RateRule("notes", 2, 3600.0, (1,)),)},
    )
    client_a = await authed(a, alice)
    for i in range(2):
        assert (await client_a.publish(alice.sign(1, str(i))))[2] is True
    client_b = await authed(b, alice)
    extra = lower_than(alice)
    assert (await client_b.authenticate(extra, RELAY_URL))[2] is True
    assert (await client_b.authenticate(bob, RELAY_URL))[2] is True
    assert (await client_b.publish(extra.sign(1, "fresh key")))[3] == "rate-limited: notes"
    bob_only = await authed(a, bob)
    for i in range(2):
        assert (await bob_only.publish(bob.sign(1, f"bob {i}")))[2] is True


async def test_a_pipelined_burst_is_stored_and_published_in_batches_with_limits_in_place(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    """EVENTs sent back to back to one instance: the unlimited ones are saved and put on
    the bus in batches, a kind with a shared rate limit is still checked event by event
    in its place, every OK comes back in order, and the other instance delivers each
    stored event once, in order."""
    a, b = await two_instances(
        start_relay, tmp_path, redis, rate_limiter={"event": (RateRule("notes", 2, 3600.0, (7,)),)}
    )
    reader = await b.client()
    _, end = await reader.req("live", {"kinds": [1, 7]})
    assert end[0] == "EOSE"
    alice = Keys()
    events = [alice.sign(1, f"before {i}") for i in range(8)]
    events += [alice.sign(7, f"limited {i}") for i in range(3)]
    events += [alice.sign(1, f"after {i}") for i in range(8)]
    publisher = await RawClient.open(a.url)
    await publisher.send_many([["EVENT", e.to_dict()] for e in events])
    answers: list[list[Any]] = []
    while len(answers) < len(events):
        frame = await publisher.recv()
        if frame[0] == "OK":
            answers.append(frame)
    assert [answer[1] for answer in answers] == [e.id for e in events]
    assert answers[10][2:] == [False, "rate-limited: notes"]
    assert all(answer[2] is True for i, answer in enumerate(answers) if i != 10)
    stored = [e.id for i, e in enumerate(events) if i != 10]
    assert [(await reader.recv_until("EVENT"))[2]["id"] for _ in stored] == stored
    assert await reader.nothing_within(0.3)
    registry = a.relay.metrics.registry
    published = registry.get_sample_value("nostr_relay_bus_published_total", {"result": "ok"})
    assert published == len(stored)
    saves = registry.get_sample_value("nostr_relay_store_seconds_count", {"op": "save"})
    assert saves is not None and saves < len(stored)
    publisher.close()


async def test_the_keypackage_fetch_limit_counts_an_identity_on_every_instance(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    owner, requester = Keys(), Keys()
    a, b = await two_instances(
        start_relay,
        tmp_path,
        redis,
        mls_gateway={"keypackage_fetch_rate": 1},
        auth={"pubkey_whitelist": (owner.pubkey, requester.pubkey)},
    )
    owner_a = await authed(a, owner)
    for n in range(3):
        assert (await owner_a.publish(keypackage(owner, n)))[2] is True
    fetch = {"kinds": [443], "authors": [owner.pubkey]}
    events, end = await (await authed(a, requester)).req("kp", fetch)
    assert len(events) == 1 and end[0] == "EOSE"
    events, end = await (await authed(b, requester)).req("kp", fetch)
    assert events == [] and end == ["CLOSED", "kp", "rate-limited: keypackage_fetch"]


async def test_connection_keyed_fetch_limits_never_collide_across_instances(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    """Without an allowlist a fetch is charged to the connection; connection numbers
    repeat across instances, so a connection on B does not inherit A's bucket."""
    a, b = await two_instances(
        start_relay, tmp_path, redis, mls_gateway={"keypackage_fetch_rate": 1}
    )
    owner = Keys()
    owner_a = await authed(a, owner)
    for n in range(3):
        assert (await owner_a.publish(keypackage(owner, n)))[2] is True
    first_on_a = await authed(a, Keys())  # connection 2 of instance A
    await authed(b, Keys())  # connection 1 of instance B
    first_on_b = await authed(b, Keys())  # connection 2 of instance B
    fetch = {"kinds": [443], "authors": [owner.pubkey]}
    for client in (first_on_a, first_on_b):
        events, end = await client.req("kp", fetch)
        assert len(events) == 1 and end[0] == "EOSE"


async def test_a_nip98_authorization_works_once_across_instances(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    a, b = await two_instances(start_relay, tmp_path, redis, mls_gateway={"enable_api": True})
    owner = Keys()
    path = f"/api/v1/keypackages?owner={owner.pubkey}"
    signed = header(auth_event(Keys(), "GET", "https://relay.test" + path))
    first = await http_request(a.http_url + path, headers=signed)
    assert first.status == 200, first.body
    replay = await http_request(b.http_url + path, headers=signed)
    assert replay.status == 401
    assert replay.json() == {"error": "authorization event was already used"}


async def test_one_instance_sweeps_the_shared_store(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    a, b = await two_instances(start_relay, tmp_path, redis)
    now = int(time.time())
    assert await a.relay.sweep(now) is True
    assert await b.relay.sweep(now) is False
    assert await a.relay.sweep(now) is True


async def test_without_redis_limits_hold_per_instance_and_every_instance_sweeps(
    start_relay: StartRelay, tmp_path: Path, redis: RedisServer
) -> None:
    a, b = await two_instances(
        start_relay, tmp_path, redis, mls_gateway={"keypackage_fetch_rate": 1}
    )
    owner, requester = Keys(), Keys()
    owner_a = await authed(a, owner)
    for n in range(3):
        assert (await owner_a.publish(keypackage(owner, n)))[2] is True
    await redis.stop()
    fetch = {"kinds": [443], "authors": [owner.pubkey]}
    requester_a = await authed(a, requester)
    events, _ = await requester_a.req("kp1", fetch)
    assert len(events) == 1
    events, end = await requester_a.req("kp2", fetch)
    assert end == ["CLOSED", "kp2", "rate-limited: keypackage_fetch"]
    now = int(time.time())
    assert await a.relay.sweep(now) is True
    assert await b.relay.sweep(now) is True
