"""Adversarial delivery over real sockets (R-A2, R-A3, R-A4, §12): a non-member and an
unauthenticated client never receive a restricted event — stored, live, COUNT or REST —
while members and recipients receive everything addressed to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from relay.core.event import Event
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nip98 import Api, call
from tests.support.nostr import Keys, RelayClient

OWNER, MEMBER, RECIPIENT, OUTSIDER, LATECOMER = (Keys() for _ in range(5))
G = "g-adversarial"
ALL_KINDS = [1, 443, 445, 446, 450, 1059, 10051]


def tagged(**tags: str | list[str]) -> list[list[str]]:
    out = []
    for name, value in tags.items():
        for v in [value] if isinstance(value, str) else value:
            out.append([name, v])
    return out


@dataclass
class World:
    """A relay with an MLS group and four observers, after the restricted events were sent."""

    running: RunningRelay
    owner: RelayClient
    clients: dict[str, RelayClient]
    events: dict[str, Event] = field(default_factory=dict)
    live: dict[str, set[str]] = field(default_factory=dict)
    throwaway: Keys = field(default_factory=Keys)

    def ids(self, *names: str) -> set[str]:
        return {self.events[n].id for n in names}

    @property
    def restricted(self) -> set[str]:
        return {e.id for e in self.events.values() if e.kind in (445, 446, 450, 1059)}


def filters_for(name: str, throwaway: Keys) -> dict[str, dict[str, Any]]:
    """Kind-less filters for everyone; the kinds filter only for authenticated viewers."""
    filters: dict[str, dict[str, Any]] = {
        "all": {},
        "h": {"#h": [G]},
        "p": {"#p": [RECIPIENT.pubkey, MEMBER.pubkey, OUTSIDER.pubkey]},
        "authors": {"authors": [throwaway.pubkey, OWNER.pubkey]},
    }
    if name != "anon":
        filters["kinds"] = {"kinds": ALL_KINDS}
    return filters


async def read_until(client: RelayClient, sub_ids: set[str], sentinel: str) -> set[str]:
    """Event ids received on ``sub_ids`` until the sentinel arrived on every one of them.

    The relay fans out in publish order, so anything that would have leaked arrives
    before the sentinel: no timing involved."""
    waiting, seen = set(sub_ids), set()
    while waiting:
        msg = await client.recv()
        if msg[0] == "EVENT" and msg[1] in sub_ids:
            if msg[2]["id"] == sentinel:
                waiting.discard(msg[1])
            else:
                seen.add(msg[2]["id"])
    return seen


async def stored(client: RelayClient, filters: list[dict[str, Any]]) -> set[str]:
    got: set[str] = set()
    for i, f in enumerate(filters):
        events, end = await client.req(f"s{i}", f)
        assert end[0] == "EOSE", end
        got |= {e["id"] for e in events}
    return got


async def count(client: RelayClient, f: dict[str, Any]) -> list[Any]:
    await client.send("COUNT", "c", f)
    return await client.recv_until("COUNT")


@pytest.fixture
async def world(start_relay: StartRelay, tmp_path: Path) -> AsyncIterator[World]:
    config = make_config(
        tmp_path,
        mls_gateway={"enable_api": True},
        information={"relay_url": "wss://relay.test"},
    )
    running = await start_relay(config)
    owner = await running.client()
    clients = {name: await running.client() for name in ("member", "recipient", "outsider", "anon")}
    for client, keys in (
        (owner, OWNER),
        (clients["member"], MEMBER),
        (clients["recipient"], RECIPIENT),
        (clients["outsider"], OUTSIDER),
    ):
        assert (await client.authenticate(keys))[2] is True
    w = World(running, owner, clients)
    t = w.throwaway

    async def publish(name: str, event: Event) -> None:
        ok = await owner.publish(event)
        assert ok[2] is True, (name, ok)
        w.events[name] = event

    await publish(
        "bootstrap",
        OWNER.sign(450, "", tagged(h=G, op="bootstrap", seq="1", p=MEMBER.pubkey)),
    )
    for name, client in clients.items():
        for sub_id, f in filters_for(name, t).items():
            await client.send("REQ", sub_id, f)
            assert (await client.recv_until("EOSE"))[1] == sub_id
    await publish("group_msg", t.sign(445, "ciphertext", tagged(h=G, k="1")))
    await publish(
        "roster_add", OWNER.sign(450, "", tagged(h=G, op="add", seq="2", p=LATECOMER.pubkey))
    )
    await publish("dm", OWNER.sign(446, "noise", tagged(p=RECIPIENT.pubkey, v="noise.1")))
    await publish("wrap", t.sign(1059, "sealed", tagged(p=RECIPIENT.pubkey)))
    await publish("wrap_member", t.sign(1059, "sealed", tagged(p=MEMBER.pubkey, h=G)))
    await publish("keypackage", OWNER.sign(443, "0102", tagged(mls_protocol_version="1.0")))
    await publish("kp_relays", OWNER.sign(10051, "", tagged(relay="wss://kp.example")))
    sentinel = OWNER.sign(1, "sentinel", tagged(h=G, p=[RECIPIENT.pubkey, MEMBER.pubkey]))
    assert (await owner.publish(sentinel))[2] is True
    w.events["sentinel"] = sentinel
    for name, client in clients.items():
        w.live[name] = await read_until(client, set(filters_for(name, t)), sentinel.id)
    yield w


EXPECTED = {
    "member": {"bootstrap", "group_msg", "roster_add", "wrap_member"},
    "recipient": {"dm", "wrap"},
    "outsider": set(),
    "anon": set(),
}


@pytest.mark.parametrize("observer", EXPECTED)
async def test_live_fan_out_delivers_restricted_events_only_to_their_readers(
    world: World, observer: str
) -> None:
    """Live: kind-less, #h, #p, authors and kinds subscriptions get exactly what the viewer
    may read (the bootstrap predates the subscriptions)."""
    expected = world.ids(*EXPECTED[observer]) - world.ids("bootstrap")
    assert world.live[observer] & world.restricted == expected


@pytest.mark.parametrize("observer", EXPECTED)
async def test_stored_results_deliver_restricted_events_only_to_their_readers(
    world: World, observer: str
) -> None:
    """Stored: the same filters, plus an ``ids`` filter naming every event, return exactly
    what the viewer may read."""
    filters = [*filters_for(observer, world.throwaway).values(), {"ids": sorted(world.restricted)}]
    got = await stored(world.clients[observer], filters)
    assert got & world.restricted == world.ids(*EXPECTED[observer])


@pytest.mark.parametrize("observer", EXPECTED)
async def test_count_counts_only_readable_restricted_events(world: World, observer: str) -> None:
    """COUNT over every restricted id, and over the group's ``#h`` (which also matches
    the public sentinel note), leaks nothing."""
    client = world.clients[observer]
    expected = world.ids(*EXPECTED[observer])
    assert (await count(client, {"ids": sorted(world.restricted)}))[2] == {"count": len(expected)}
    readable = expected | world.ids("sentinel")
    in_group = {e.id for e in world.events.values() if G in e.tag_values("h")} & readable
    assert (await count(client, {"#h": [G]}))[2] == {"count": len(in_group)}


async def test_owner_reads_everything_it_published(world: World) -> None:
    """The publishing connection reads its group, its DM and its throw-away gift wraps."""
    assert await stored(world.owner, [{"ids": sorted(world.restricted)}]) == world.restricted


@pytest.mark.parametrize("kinds", [[445], [446], [450], [1059], [443], [10051], [1, 445]])
async def test_unauthenticated_req_and_count_for_restricted_kinds_are_closed(
    world: World, kinds: list[int]
) -> None:
    """REQ and COUNT naming a restricted kind without AUTH → CLOSED auth-required."""
    anon = world.clients["anon"]
    events, end = await anon.req("r", {"kinds": kinds})
    assert events == [] and end[0] == "CLOSED" and end[2].startswith("auth-required: ")
    await anon.send("COUNT", "c", {"kinds": kinds})
    closed = await anon.recv_until("CLOSED")
    assert closed[1] == "c" and closed[2].startswith("auth-required: ")


async def test_unauthenticated_client_never_sees_keypackage_kinds(world: World) -> None:
    """443/10051 are for authenticated connections only: not stored, live, or counted."""
    anon = world.clients["anon"]
    kp = world.ids("keypackage", "kp_relays")
    assert not world.live["anon"] & kp
    assert not await stored(anon, [{}, {"ids": sorted(kp)}, {"authors": [OWNER.pubkey]}]) & kp
    assert (await count(anon, {"ids": sorted(kp)}))[2] == {"count": 0}


async def test_authenticated_kindless_queries_never_harvest_others_keypackages(
    world: World,
) -> None:
    """Without a 443 fetch, other owners' key packages are neither in stored results nor
    fanned out live (R-M1b); the relay list (10051) is readable by any authenticated
    connection."""
    outsider = world.clients["outsider"]
    filters: list[dict[str, Any]] = [
        {},
        {"authors": [OWNER.pubkey]},
        {"ids": [world.events["keypackage"].id]},
    ]
    got = await stored(outsider, filters)
    assert world.events["keypackage"].id not in got
    assert world.events["kp_relays"].id in got
    for observer in ("member", "recipient", "outsider"):
        assert world.events["keypackage"].id not in world.live[observer]


async def test_unauthenticated_writes_of_restricted_kinds_are_refused(world: World) -> None:
    """EVENT of any MLS kind from an unauthenticated connection → auth-required."""
    anon, t = world.clients["anon"], world.throwaway
    for event in (
        t.sign(445, "x", tagged(h=G)),
        t.sign(1059, "x", tagged(p=RECIPIENT.pubkey)),
        OUTSIDER.sign(446, "x", tagged(p=RECIPIENT.pubkey)),
        OUTSIDER.sign(443, "0102"),
        OUTSIDER.sign(10051, "", tagged(relay="wss://a.example")),
        OUTSIDER.sign(450, "", tagged(h="new", op="bootstrap", seq="1")),
    ):
        ok = await anon.publish(event)
        assert ok[2] is False and ok[3].startswith("auth-required: "), (event.kind, ok)


async def test_outsider_cannot_write_to_or_take_over_the_group(world: World) -> None:
    """A non-member's 445 is refused; its bootstrap, rosters and replayed rosters too."""
    outsider, t = world.clients["outsider"], world.throwaway
    refused = [
        (t.sign(445, "x", tagged(h=G)), "restricted: not a member of group"),
        (OUTSIDER.sign(450, "", tagged(h=G, op="bootstrap", seq="9")), "restricted:"),
        (OUTSIDER.sign(450, "", tagged(h=G, op="add", seq="9", p=OUTSIDER.pubkey)), "restricted:"),
    ]
    for event, reason in refused:
        ok = await outsider.publish(event)
        assert ok[2] is False and ok[3].startswith(reason), ok
    replayed = world.events["roster_add"]
    await outsider.send_raw('["EVENT",' + replayed.raw.decode() + "]")
    ok = await outsider.recv_until("OK")
    assert ok[1] == replayed.id and ok[2] is False


async def test_self_addressed_gift_wrap_does_not_make_an_outsider_a_member(world: World) -> None:
    """A non-member's gift wrap with ``h`` and its own ``p`` is stored but invites nobody."""
    outsider, t = world.clients["outsider"], world.throwaway
    ok = await outsider.publish(t.sign(1059, "x", tagged(p=OUTSIDER.pubkey, h=G)))
    assert ok[2] is True
    ok = await outsider.publish(Keys().sign(445, "x", tagged(h=G)))
    assert ok[2] is False and ok[3] == "restricted: not a member of group"
    assert world.events["group_msg"].id not in await stored(outsider, [{"#h": [G]}])


async def test_an_outsiders_gift_wrap_never_claims_a_group(world: World) -> None:
    """A 1059 tagged with a group id not bootstrapped yet creates no group: its real
    owner's bootstrap is then accepted, and the outsider is neither owner nor member."""
    outsider, t = world.clients["outsider"], world.throwaway
    fresh = "g-not-yet-bootstrapped"
    ok = await outsider.publish(t.sign(1059, "x", tagged(p=OUTSIDER.pubkey, h=fresh)))
    assert ok[2] is True
    assert world.running.relay.gateway.directory.get(fresh) is None
    bootstrap = OWNER.sign(450, "", tagged(h=fresh, op="bootstrap", seq="1", p=MEMBER.pubkey))
    assert (await world.owner.publish(bootstrap))[2:] == [True, ""]
    state = world.running.relay.gateway.directory.get(fresh)
    assert state is not None and state.owner == OWNER.pubkey
    ok = await outsider.publish(Keys().sign(445, "x", tagged(h=fresh)))
    assert ok[2:] == [False, "restricted: not a member of group"]


async def test_removed_member_stops_receiving_live_group_messages(world: World) -> None:
    """After ``remove``, an open subscription of the removed member gets nothing more."""
    member, t = world.clients["member"], world.throwaway
    await member.send("REQ", "after", {"#h": [G]})
    await member.recv_until("EOSE")
    remove = OWNER.sign(450, "", tagged(h=G, op="remove", seq="3", p=MEMBER.pubkey))
    assert (await world.owner.publish(remove))[2] is True
    secret = t.sign(445, "after removal", tagged(h=G))
    assert (await world.owner.publish(secret))[2] is True
    sentinel = OWNER.sign(1, "sentinel", tagged(h=G))
    assert (await world.owner.publish(sentinel))[2] is True
    assert secret.id not in await read_until(member, {"after"}, sentinel.id)
    assert secret.id not in await stored(member, [{"ids": [secret.id]}])


async def test_invited_member_receives_later_group_messages_live(world: World) -> None:
    """A member's gift wrap with ``h`` invites the recipient, who then reads the group."""
    recipient, t = world.clients["recipient"], world.throwaway
    await recipient.send("REQ", "grp", {"#h": [G]})
    await recipient.recv_until("EOSE")
    invite = t.sign(1059, "welcome", tagged(p=RECIPIENT.pubkey, h=G))
    assert (await world.owner.publish(invite))[2] is True
    msg = t.sign(445, "hello newcomer", tagged(h=G))
    assert (await world.owner.publish(msg))[2] is True
    sentinel = OWNER.sign(1, "sentinel", tagged(h=G))
    assert (await world.owner.publish(sentinel))[2] is True
    assert msg.id in await read_until(recipient, {"grp"}, sentinel.id)
    assert msg.id in await stored(recipient, [{"#h": [G], "kinds": [445]}])


# --- the REST API leaks nothing either -----------------------------------------------------


async def test_rest_api_gives_outsiders_nothing_restricted(world: World) -> None:
    """Group endpoints → 404 for a non-member (as for a group that does not exist);
    missed messages are only the caller's."""
    url = Api(world.running.http_url + "/api/v1", "https://relay.test/api/v1")
    assert (await call(url, OUTSIDER, "GET", f"/groups/{G}"))[0] == 404
    status, body = await call(url, OUTSIDER, "POST", "/messages/group", {"group_id": G})
    assert status == 404 and "messages" not in body
    status, body = await call(url, OUTSIDER, "POST", "/messages/missed", {"since": 0})
    assert status == 200 and body["messages"] == [] and body["count"] == 0


async def test_rest_api_refuses_unauthenticated_callers(world: World) -> None:
    """No NIP-98 header: 401 on every route, no data."""
    url = Api(world.running.http_url + "/api/v1", "https://relay.test/api/v1")
    for method, path, body in (
        ("GET", f"/groups/{G}", None),
        ("POST", "/messages/group", {"group_id": G}),
        ("POST", "/messages/missed", {}),
        ("GET", f"/keypackages?owner={OWNER.pubkey}", None),
    ):
        status, reply = await call(url, None, method, path, body)
        assert status == 401 and set(reply) == {"error"}


async def test_rest_api_serves_members_and_recipients(world: World) -> None:
    """The member reads the group and its messages; the recipient its DM and gift wrap."""
    url = Api(world.running.http_url + "/api/v1", "https://relay.test/api/v1")
    status, body = await call(url, MEMBER, "GET", f"/groups/{G}")
    assert status == 200 and body["group_id"] == G
    status, body = await call(url, MEMBER, "POST", "/messages/group", {"group_id": G})
    assert status == 200 and {m["id"] for m in body["messages"]} == world.ids("group_msg")
    status, body = await call(url, RECIPIENT, "POST", "/messages/missed", {"since": 0})
    assert status == 200 and {m["id"] for m in body["messages"]} == world.ids("dm", "wrap")


# --- delivery = "open" and auth.enabled = false --------------------------------------------


async def open_relay(start_relay: StartRelay, tmp_path: Path, **auth: Any) -> RunningRelay:
    sections: dict[str, dict[str, Any]] = {"mls_gateway": {"delivery": "open"}}
    if auth:
        sections["auth"] = auth
    running: RunningRelay = await start_relay(make_config(tmp_path, **sections))
    return running


async def test_open_delivery_serves_restricted_kinds_without_auth(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """delivery = "open": anyone publishes and reads 445/446/1059 (stored and live)."""
    running = await open_relay(start_relay, tmp_path)
    writer, reader = await running.client(), await running.client()
    events, end = await reader.req("live", {"kinds": [445, 446, 1059]})
    assert end[0] == "EOSE"
    t = Keys()
    sent = [
        t.sign(445, "x", tagged(h=G)),
        t.sign(446, "x", tagged(p=RECIPIENT.pubkey)),
        t.sign(1059, "x", tagged(p=RECIPIENT.pubkey)),
    ]
    for event in sent:
        assert (await writer.publish(event))[2] is True
    live = [(await reader.recv_until("EVENT"))[2]["id"] for _ in sent]
    assert live == [e.id for e in sent]
    assert {e["id"] for e in (await reader.req("stored", {"kinds": [445, 446, 1059]}))[0]} == {
        e.id for e in sent
    }


async def test_open_delivery_still_refuses_top_level_welcomes_and_harvesting(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """delivery = "open" keeps the shape rules and key package consumption."""
    running = await open_relay(start_relay, tmp_path)
    client = await running.client()
    ok = await client.publish(Keys().sign(444, "welcome"))
    assert ok[2] is False and ok[3] == "invalid: welcome must be gift-wrapped"
    assert (await client.publish(OWNER.sign(443, "0102")))[2] is True
    events, end = await client.req("kp", {"kinds": [443]})
    assert events == [] and end[0] == "EOSE"


async def test_auth_disabled_with_enforced_delivery_refuses_restricted_kinds(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """auth.enabled = false: nobody can authenticate, so MLS kinds are auth-required."""
    running = await start_relay(make_config(tmp_path, auth={"enabled": False}))
    client = await running.client()
    ok = await client.publish(Keys().sign(445, "x", tagged(h=G)))
    assert ok[2] is False and ok[3].startswith("auth-required: ")
    events, end = await client.req("r", {"kinds": [1059]})
    assert end[0] == "CLOSED" and end[2].startswith("auth-required: ")


async def test_auth_disabled_with_open_delivery_accepts_restricted_kinds(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """auth.enabled = false and delivery = "open": MLS kinds flow without AUTH."""
    running = await open_relay(start_relay, tmp_path, enabled=False)
    client = await running.client()
    event = Keys().sign(445, "x", tagged(h=G))
    assert (await client.publish(event))[2] is True
    assert [e["id"] for e in (await client.req("r", {"kinds": [445]}))[0]] == [event.id]


# --- allowlist (R-A2) ----------------------------------------------------------------------


async def test_allowlist_applies_to_the_connection_for_throwaway_kinds(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With an allowlist, 445/1059 by throw-away keys are accepted from a listed connection;
    an unlisted authenticated connection is restricted."""
    config = make_config(tmp_path, auth={"pubkey_whitelist": (OWNER.pubkey,)})
    running = await start_relay(config)
    listed, unlisted = await running.client(), await running.client()
    await listed.authenticate(OWNER)
    await unlisted.authenticate(OUTSIDER)
    t = Keys()
    for event in (t.sign(445, "x", tagged(h=G)), t.sign(1059, "x", tagged(p=MEMBER.pubkey))):
        assert (await listed.publish(event))[2] is True
        ok = await unlisted.publish(event)
        assert ok[2] is False and ok[3].startswith("restricted: "), ok
    ok = await listed.publish(t.sign(446, "x", tagged(p=MEMBER.pubkey)))
    assert ok[2] is False and ok[3].startswith("restricted: ")
    events, end = await unlisted.req("r", {})
    assert events == [] and end[0] == "CLOSED" and end[2].startswith("restricted: ")
