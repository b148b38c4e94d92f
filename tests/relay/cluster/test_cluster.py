"""Cluster mode over real processes: fan-out across instances, the delivery rules and
group membership on the receiving instance, and a Redis outage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relay.core.event import Event
from tests.relay.cluster.conftest import Cluster
from tests.support.http import http_request
from tests.support.nostr import TIMEOUT, Keys, RelayClient
from tests.support.process import ServeProcess, base_env, serve_processes
from tests.support.redis_server import RedisServer

GROUP = "a1" * 16
EMULATOR_LOCK_WAIT = 30.0  # seconds an OK may take when the emulator times a lock out
STORE_RETRIES = 5  # how often a writer answered "error: ... retry" tries again


async def authed(instance: ServeProcess, keys: Keys) -> RelayClient:
    client = await RelayClient.open(instance.url)
    ok = await client.authenticate(keys)
    assert ok[2] is True, ok
    return client


async def publish_ok(client: RelayClient, event: Event) -> None:
    ok = await client.publish(event)
    assert ok[2] is True, ok


async def subscribe(client: RelayClient, sub_id: str, *filters: dict[str, Any]) -> None:
    _, end = await client.req(sub_id, *filters)
    assert end[0] == "EOSE", end


async def received_id(client: RelayClient, sub_id: str) -> str:
    msg = await client.recv_until("EVENT")
    assert msg[1] == sub_id, msg
    return str(msg[2]["id"])


async def health(instance: ServeProcess) -> tuple[int, dict[str, Any]]:
    reply = await http_request(f"http://127.0.0.1:{instance.port}/health")
    document = reply.json()
    assert isinstance(document, dict)
    return reply.status, document


async def until_health(instance: ServeProcess, status: int) -> dict[str, Any]:
    """Poll /health until it answers ``status`` (bounded by a generous timeout)."""

    async def poll() -> dict[str, Any]:
        while True:
            try:
                code, document = await health(instance)
            except OSError:  # not listening yet
                code, document = 0, {}
            if code == status:
                return document
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), 4 * TIMEOUT)


def roster(owner: Keys, op: str, seq: int, *members: Keys) -> Event:
    tags = [["h", GROUP], ["op", op], ["seq", str(seq)]] + [["p", m.pubkey] for m in members]
    return owner.sign(450, "", tags)


def group_message(text: str) -> Event:
    return Keys().sign(445, text, [["h", GROUP]])


async def test_health_reports_the_bus_ok_on_both_instances(cluster: Cluster) -> None:
    for instance in (cluster.a, cluster.b):
        code, document = await health(instance)
        assert (code, document["bus"], document["status"]) == (200, "ok", "healthy")


async def test_a_subscriber_on_a_receives_an_event_published_on_b_exactly_once(
    cluster: Cluster,
) -> None:
    reader_a = await RelayClient.open(cluster.a.url)
    reader_b = await RelayClient.open(cluster.b.url)
    writer_b = await RelayClient.open(cluster.b.url)
    for reader in (reader_a, reader_b):
        await subscribe(reader, "notes", {"kinds": [1]})
    event = Keys().sign(1, "across instances")
    await publish_ok(writer_b, event)
    for reader in (reader_a, reader_b):
        assert await received_id(reader, "notes") == event.id
        assert await reader.nothing_within(0.5)  # never twice


async def test_an_event_sent_to_both_instances_is_delivered_once_on_each(
    cluster: Cluster,
) -> None:
    reader = await RelayClient.open(cluster.a.url)
    await subscribe(reader, "notes", {"kinds": [1]})
    event = Keys().sign(1, "published twice")
    writers = [await RelayClient.open(i.url) for i in (cluster.a, cluster.b)]
    # Two transactions creating one document at once: the Firestore emulator resolves
    # that only by timing a lock out, ~2 s each time (2.0-4.2 s per pair measured here),
    # and on a loaded machine both may run out of the store timeout. They then answer
    # "error: ... retry", and a client retries, as each writer here does.

    async def until_stored(writer: RelayClient) -> list[Any]:
        for _ in range(STORE_RETRIES):
            ok = await writer.publish(event, EMULATOR_LOCK_WAIT)
            if ok[2] is True:
                break
            assert ok[3].startswith("error:") and ok[3].endswith("retry"), ok
        return ok

    answers = await asyncio.gather(*(until_stored(w) for w in writers))
    assert all(ok[2] is True for ok in answers), answers
    assert await received_id(reader, "notes") == event.id
    assert await reader.nothing_within(0.5)


async def test_a_non_member_on_a_never_receives_a_group_message_from_b(
    cluster: Cluster,
) -> None:
    owner, member, outsider = Keys(), Keys(), Keys()
    owner_b = await authed(cluster.b, owner)
    await publish_ok(owner_b, roster(owner, "bootstrap", 1, member))
    member_a = await authed(cluster.a, member)
    outsider_a = await authed(cluster.a, outsider)
    for client in (member_a, outsider_a):
        await subscribe(client, "g", {"kinds": [445, 1059], "#h": [GROUP]})
    message = group_message("for members")
    await publish_ok(owner_b, message)
    assert await received_id(member_a, "g") == message.id
    assert await outsider_a.nothing_within(0.5)
    events, _ = await outsider_a.req("stored", {"kinds": [445], "#h": [GROUP]})
    assert events == []


async def test_a_roster_removal_on_b_stops_delivery_on_a_at_once(cluster: Cluster) -> None:
    owner, member = Keys(), Keys()
    owner_b = await authed(cluster.b, owner)
    await publish_ok(owner_b, roster(owner, "bootstrap", 1, member))
    member_a = await authed(cluster.a, member)
    await subscribe(member_a, "g", {"kinds": [445], "#h": [GROUP]})
    before = group_message("before")
    await publish_ok(owner_b, before)
    assert await received_id(member_a, "g") == before.id
    await publish_ok(owner_b, roster(owner, "remove", 2, member))
    owner_a = await authed(cluster.a, owner)
    for writer in (owner_b, owner_a):  # published on B and on A itself
        await publish_ok(writer, group_message("after removal"))
    assert await member_a.nothing_within(0.5)
    refused = await member_a.publish(member.sign(445, "still here?", [["h", GROUP]]))
    assert refused[2:] == [False, "restricted: not a member of group"]


async def test_a_gift_wrap_invite_on_b_admits_the_member_on_a(cluster: Cluster) -> None:
    owner, invitee = Keys(), Keys()
    owner_b = await authed(cluster.b, owner)
    await publish_ok(owner_b, group_message("creates the group"))
    invitee_a = await authed(cluster.a, invitee)
    await subscribe(invitee_a, "g", {"kinds": [445], "#h": [GROUP]})
    await subscribe(invitee_a, "inbox", {"kinds": [1059], "#p": [invitee.pubkey]})
    invite = Keys().sign(1059, "sealed welcome", [["p", invitee.pubkey], ["h", GROUP]])
    await publish_ok(owner_b, invite)
    assert await received_id(invitee_a, "inbox") == invite.id
    message = group_message("welcome aboard")
    await publish_ok(owner_b, message)
    assert await received_id(invitee_a, "g") == message.id
    # accepted as a member on A too (the instances share the store)
    await publish_ok(invitee_a, invitee.sign(445, "hello from A", [["h", GROUP]]))


async def test_a_redis_outage_degrades_to_local_fan_out_and_recovers(cluster: Cluster) -> None:
    reader_a = await RelayClient.open(cluster.a.url)
    reader_b = await RelayClient.open(cluster.b.url)
    writer_b = await RelayClient.open(cluster.b.url)
    for reader in (reader_a, reader_b):
        await subscribe(reader, "notes", {"kinds": [1]})

    await cluster.redis.stop()
    for instance in (cluster.a, cluster.b):
        document = await until_health(instance, 503)
        assert (document["status"], document["bus"], document["store"]) == (
            "unhealthy",
            "unhealthy",
            "ok",
        )
    during = Keys().sign(1, "during the outage")
    await publish_ok(writer_b, during)  # stored, so acknowledged
    assert await received_id(reader_b, "notes") == during.id  # local fan-out
    assert await reader_a.nothing_within(0.5)  # remote subscribers miss it live ...
    events, _ = await reader_a.req("catch-up", {"kinds": [1], "since": during.created_at})
    assert during.id in {e["id"] for e in events}  # ... and catch up with since

    await cluster.redis.start()
    for instance in (cluster.a, cluster.b):
        document = await until_health(instance, 200)
        assert document["bus"] == "ok"
    after = Keys().sign(1, "after the outage")
    await publish_ok(writer_b, after)
    for reader in (reader_a, reader_b):
        assert await received_id(reader, "notes") == after.id


async def test_a_membership_change_made_during_an_outage_reaches_a_after_it(
    cluster: Cluster,
) -> None:
    owner, member = Keys(), Keys()
    owner_b = await authed(cluster.b, owner)
    await publish_ok(owner_b, roster(owner, "bootstrap", 1, member))
    member_a = await authed(cluster.a, member)
    await subscribe(member_a, "g", {"kinds": [445], "#h": [GROUP]})

    await cluster.redis.stop()
    await until_health(cluster.b, 503)
    await publish_ok(owner_b, roster(owner, "remove", 2, member))
    await cluster.redis.start()
    await until_health(cluster.a, 200)
    await until_health(cluster.b, 200)

    owner_a = await authed(cluster.a, owner)
    await publish_ok(owner_a, group_message("after the outage"))
    assert await member_a.nothing_within(0.5)


async def test_an_instance_started_while_redis_is_down_serves_and_joins_later(
    tmp_path: Path, redis: RedisServer
) -> None:
    await redis.stop()
    env = {**base_env(tmp_path), "MLSGW_CLUSTER__REDIS_URL": redis.url}
    async with serve_processes(tmp_path) as serve:
        instance = await serve(env=env)
        document = await until_health(instance, 503)
        assert (document["bus"], document["store"]) == ("unhealthy", "ok")
        client = await RelayClient.open(instance.url)
        await publish_ok(client, Keys().sign(1, "served without the bus"))
        await redis.start()
        assert (await until_health(instance, 200))["bus"] == "ok"
