"""The Marmot membership rule over real sockets (R-M11, R-A3, R-A4): a roster-less group's
id is the capability for authenticated connections that name it; nothing that does not
name it returns or counts it; rosters and ``membership = "roster"`` stay strict; the REST
API follows the same rule; a key package its owner deleted (NIP-09) is never served."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from relay.core.event import Event
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nip98 import Api, call
from tests.support.nostr import Keys, RelayClient

ALICE, BOB, EVE = Keys(), Keys(), Keys()


def marmot_id() -> str:
    return os.urandom(32).hex()


def group_event(group_id: str, content: str = "nip44-ciphertext") -> Event:
    """A 445 as Marmot clients send it: a fresh throw-away author, only an ``h`` tag."""
    return Keys().sign(445, content, [["h", group_id]])


async def authed(running: RunningRelay, keys: Keys) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys))[2] is True
    return client


async def stored_ids(client: RelayClient, *filters: dict[str, Any]) -> set[str]:
    events, end = await client.req("q", *filters)
    assert end[0] == "EOSE", end
    return {e["id"] for e in events}


async def count(client: RelayClient, *filters: dict[str, Any]) -> int:
    await client.send("COUNT", "n", *filters)
    answer = await client.recv_until("COUNT")
    result: int = answer[2]["count"]
    return result


async def accepted(client: RelayClient, event: Event) -> bool:
    ok = await client.publish(event)
    return bool(ok[2])


async def test_the_issue_flow_works_on_the_default_configuration(running: RunningRelay) -> None:
    """Issue 9 as reported: Alice creates the group with a 445, Bob (never recorded as a
    member) reads it by naming it and his self-update commit is accepted; Alice gets it
    live. Before the rule, Bob's REQ was empty and his commit "not a member of group"."""
    group = marmot_id()
    alice, bob = await authed(running, ALICE), await authed(running, BOB)
    add = group_event(group)
    assert await accepted(alice, add)
    await alice.send("REQ", "live", {"kinds": [445], "#h": [group]})
    await alice.recv_until("EOSE")
    assert await stored_ids(bob, {"kinds": [445], "#h": [group]}) == {add.id}
    update = group_event(group)
    assert await accepted(bob, update)
    pushed = await alice.recv_until("EVENT")
    assert pushed[1] == "live" and pushed[2]["id"] == update.id
    assert running.relay.gateway.directory.members(group) == {ALICE.pubkey}


async def test_a_request_that_does_not_name_the_group_finds_nothing_of_it(
    running: RunningRelay,
) -> None:
    """Broad REQs, COUNTs, ids and authors scans, and live subscriptions without ``#h``
    never return or count a group the connection is not a recorded member of, even for a
    connection that named it in another request."""
    group = marmot_id()
    alice, eve = await authed(running, ALICE), await authed(running, EVE)
    for sub_id, f in (("broad", {"kinds": [445]}), ("all", {})):
        await eve.send("REQ", sub_id, f)
        await eve.recv_until("EOSE")
    first = group_event(group)
    assert await accepted(alice, first)
    assert await stored_ids(eve, {"kinds": [445], "#h": [group]}) == {first.id}  # named
    scans: list[dict[str, Any]] = [
        {"kinds": [445]},
        {},
        {"ids": [first.id]},
        {"authors": [first.pubkey]},
        {"kinds": [445], "#h": [marmot_id()]},
        {"kinds": [445], "#e": [group]},
    ]
    for f in scans:
        assert await stored_ids(eve, f) == set(), f
        assert await count(eve, f) == 0, f
    # Live: the broad subscriptions get nothing; Eve's own group is the sentinel.
    second = group_event(group)
    assert await accepted(alice, second)
    sentinel = group_event(marmot_id())
    assert await accepted(eve, sentinel)
    seen: list[str] = []
    while len([s for s in seen if s == sentinel.id]) < 2:
        msg = await eve.recv_until("EVENT")
        seen.append(msg[2]["id"])
    assert second.id not in seen and first.id not in seen


async def test_naming_the_group_counts_it(running: RunningRelay) -> None:
    """COUNT with ``#h`` naming the group counts its events, like the REQ returns them."""
    group = marmot_id()
    alice, bob = await authed(running, ALICE), await authed(running, BOB)
    for _ in range(3):
        assert await accepted(alice, group_event(group))
    assert await count(bob, {"kinds": [445], "#h": [group]}) == 3
    assert await count(bob, {"kinds": [445]}) == 0
    assert await count(alice, {"kinds": [445]}) == 3


async def test_an_unauthenticated_request_naming_the_group_gets_nothing(
    running: RunningRelay,
) -> None:
    """Without AUTH, ``#h`` alone (no kinds, which the default config serves anonymously)
    returns nothing; with kind 445 it is ``auth-required``."""
    group = marmot_id()
    alice = await authed(running, ALICE)
    assert await accepted(alice, group_event(group))
    anonymous = await running.client()
    assert await stored_ids(anonymous, {"#h": [group]}) == set()
    assert await count(anonymous, {"#h": [group]}) == 0
    _, end = await anonymous.req("k", {"kinds": [445], "#h": [group]})
    assert end[0] == "CLOSED" and end[2].startswith("auth-required:")
    refused = await anonymous.publish(group_event(group))
    assert refused[2] is False and refused[3].startswith("auth-required:")


async def test_a_group_with_a_roster_keeps_strict_membership(running: RunningRelay) -> None:
    """A 450-bootstrapped group (the loxation flow) with a Marmot-shaped id: naming it
    neither reads nor writes for a non-member."""
    group = marmot_id()
    alice, eve = await authed(running, ALICE), await authed(running, EVE)
    bootstrap = ALICE.sign(450, "", [["h", group], ["op", "bootstrap"], ["seq", "1"]])
    assert await accepted(alice, bootstrap)
    message = group_event(group)
    assert await accepted(alice, message)
    assert await stored_ids(eve, {"kinds": [445, 450], "#h": [group]}) == set()
    refused = await eve.publish(group_event(group))
    assert refused[2] is False and refused[3] == "restricted: not a member of group"


async def test_a_guessable_group_id_is_no_capability(running: RunningRelay) -> None:
    """Ids shorter than 32 hex bytes keep strict membership even without a roster."""
    alice, eve = await authed(running, ALICE), await authed(running, EVE)
    assert await accepted(alice, group_event("general"))
    assert await stored_ids(eve, {"kinds": [445], "#h": ["general"]}) == set()
    refused = await eve.publish(group_event("general"))
    assert refused[3] == "restricted: not a member of group"


async def test_membership_roster_turns_the_capability_off(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``membership = "roster"``: only recorded members read and write any group."""
    running = await start_relay(make_config(tmp_path, mls_gateway={"membership": "roster"}))
    group = marmot_id()
    alice, bob = await authed(running, ALICE), await authed(running, BOB)
    assert await accepted(alice, group_event(group))
    assert await stored_ids(bob, {"kinds": [445], "#h": [group]}) == set()
    refused = await bob.publish(group_event(group))
    assert refused[3] == "restricted: not a member of group"


async def test_rest_group_messages_follow_the_rule(start_relay: StartRelay, tmp_path: Path) -> None:
    """POST /messages/group names the group: Bob reads a Marmot group's 445s; a rostered
    group still answers 404 (as if it did not exist); GET /groups/{id} (owner, members)
    stays members-only."""
    config = make_config(
        tmp_path,
        mls_gateway={"enable_api": True},
        information={"relay_url": "wss://relay.test"},
    )
    running = await start_relay(config)
    group = marmot_id()
    alice = await authed(running, ALICE)
    messages = [group_event(group) for _ in range(2)]
    for event in messages:
        assert await accepted(alice, event)
    base = Api(running.http_url + "/api/v1", "https://relay.test/api/v1")
    status, body = await call(base, BOB, "POST", "/messages/group", {"group_id": group})
    assert status == 200 and {m["id"] for m in body["messages"]} == {e.id for e in messages}
    status, _ = await call(base, BOB, "GET", f"/groups/{group}")
    assert status == 404
    rostered = marmot_id()
    assert await accepted(
        alice, ALICE.sign(450, "", [["h", rostered], ["op", "bootstrap"], ["seq", "1"]])
    )
    status, _ = await call(base, BOB, "POST", "/messages/group", {"group_id": rostered})
    assert status == 404


async def test_a_keypackage_its_owner_deleted_is_never_served_again(
    running: RunningRelay,
) -> None:
    """NIP-09 by the owner removes a key package even when it is the last resort kept
    after a fetch: no fetch, ids query or re-publication brings it back."""
    bob, alice = await authed(running, BOB), await authed(running, ALICE)
    only = BOB.sign(443, "0102", [["mls_protocol_version", "1.0"], ["encoding", "hex"]])
    assert await accepted(bob, only)
    fetch = {"kinds": [443], "authors": [BOB.pubkey]}
    assert await stored_ids(alice, fetch) == {only.id}  # last resort: served, kept
    assert await stored_ids(alice, fetch) == {only.id}
    delete = BOB.sign(5, "", [["e", only.id], ["k", "443"]])
    assert await accepted(bob, delete)
    assert await stored_ids(alice, fetch) == set()
    assert await stored_ids(alice, {"ids": [only.id]}) == set()
    assert await stored_ids(bob, {"kinds": [443]}) == set()
    again = await bob.publish(only)
    assert again[2] is False and again[3].startswith("blocked:")
    assert await stored_ids(alice, fetch) == set()


async def test_only_the_owner_can_delete_a_keypackage(running: RunningRelay) -> None:
    """Someone else's kind 5 naming the key package deletes nothing."""
    bob, eve = await authed(running, BOB), await authed(running, EVE)
    now = int(time.time())
    kps = [BOB.sign(443, f"0{i}", created_at=now - 10 + i) for i in range(1, 3)]
    for kp in kps:
        assert await accepted(bob, kp)
    assert await accepted(eve, EVE.sign(5, "", [["e", kps[0].id], ["k", "443"]]))
    assert await stored_ids(bob, {"kinds": [443]}) == {kp.id for kp in kps}
