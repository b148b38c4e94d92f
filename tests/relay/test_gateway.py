"""relay.gateway over real sockets: key package consumption and fetch rate limit
(R-M1, R-M1b), the group registry (R-M3), the other kinds (R-M2, R-M4, R-M8), the sweeper
(R-M9) and the ``mls_gateway_*`` metrics (R-H2)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from relay.core.event import Event
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.http import http_request
from tests.support.nostr import Keys, RelayClient, lower_than

DAY = 86400


async def relay_with(start_relay: StartRelay, tmp_path: Path, **mls: Any) -> RunningRelay:
    running: RunningRelay = await start_relay(
        make_config(tmp_path, mls_gateway=mls, metrics={"enabled": True})
    )
    return running


async def authed(running: RunningRelay, keys: Keys) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys))[2] is True
    return client


def kp(keys: Keys, age: int = 0, tags: list[list[str]] | None = None, content: str = "") -> Event:
    """A key package created ``age`` seconds ago (distinct content per age)."""
    return keys.sign(443, content or f"{age:08x}", tags or [], created_at=int(time.time()) - age)


async def publish_ok(client: RelayClient, event: Event) -> None:
    ok = await client.publish(event)
    assert ok[2] is True, ok


async def fetch(client: RelayClient, *authors: Keys, **extra: Any) -> tuple[list[str], list[Any]]:
    events, end = await client.req(
        "kp", {"kinds": [443], "authors": [a.pubkey for a in authors], **extra}
    )
    return [e["id"] for e in events], end


# --- key packages ----------------------------------------------------------------------------


async def test_fetch_serves_one_per_author_oldest_first_and_consumes_it(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Default max_keypackages_per_query = 1; each fetch takes the next oldest."""
    running = await relay_with(start_relay, tmp_path)
    owner, requester = Keys(), Keys()
    oc, rc = await authed(running, owner), await authed(running, requester)
    kps = [kp(owner, age) for age in (30, 20, 10)]
    for event in reversed(kps):
        await publish_ok(oc, event)
    served = [(await fetch(rc, owner))[0] for _ in range(4)]
    assert served == [[kps[0].id], [kps[1].id], [kps[2].id], [kps[2].id]]


async def test_fetched_keypackage_is_the_original_signed_event(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """The full signed event is served unchanged (id, sig, tags, content)."""
    running = await relay_with(start_relay, tmp_path)
    owner = Keys()
    oc, rc = await authed(running, owner), await authed(running, Keys())
    event = kp(owner, tags=[["mls_protocol_version", "1.0"], ["ciphersuite", "0x0001"]])
    await publish_ok(oc, event)
    events, _ = await rc.req("kp", {"kinds": [443], "authors": [owner.pubkey]})
    assert events == [event.to_dict()]


async def test_fetch_per_author_limit_two_and_filter_limit(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """max_keypackages_per_query = 2 serves two per author; a REQ ``limit`` 1 serves one."""
    running = await relay_with(start_relay, tmp_path, max_keypackages_per_query=2)
    alice, bob = Keys(), Keys()
    ac, bc, rc = (
        await authed(running, alice),
        await authed(running, bob),
        await authed(running, Keys()),
    )
    alice_kps = [kp(alice, age) for age in (40, 30, 20, 10)]
    bob_kps = [kp(bob, age) for age in (40, 30, 20)]
    for event in alice_kps:
        await publish_ok(ac, event)
    for event in bob_kps:
        await publish_ok(bc, event)
    ids, _ = await fetch(rc, alice, bob)
    assert set(ids) == {alice_kps[0].id, alice_kps[1].id, bob_kps[0].id, bob_kps[1].id}
    ids, _ = await fetch(rc, alice, limit=1)
    assert ids == [alice_kps[2].id]


async def test_a_configured_per_query_above_the_hard_cap_still_serves_two(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """max_keypackages_per_query = 5 loads, and a fetch serves at most 2 per author."""
    running = await relay_with(start_relay, tmp_path, max_keypackages_per_query=5)
    alice = Keys()
    ac, rc = await authed(running, alice), await authed(running, Keys())
    alice_kps = [kp(alice, age) for age in (40, 30, 20, 10)]
    for event in alice_kps:
        await publish_ok(ac, event)
    ids, _ = await fetch(rc, alice)
    assert set(ids) == {alice_kps[0].id, alice_kps[1].id}


async def test_fetch_of_max_per_query_above_the_hard_cap_serves_two(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """max_keypackages_per_query is capped at 2 per author."""
    running = await relay_with(start_relay, tmp_path, max_keypackages_per_query=5)
    owner = Keys()
    oc, rc = await authed(running, owner), await authed(running, Keys())
    for age in (40, 30, 20, 10):
        await publish_ok(oc, kp(owner, age))
    assert len((await fetch(rc, owner))[0]) == 2


async def test_fetch_narrowed_with_ids_or_since_still_consumes(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A fetch narrowed with ``ids`` or ``since`` consumes what it serves: the same key
    package is never handed out twice while the owner holds others."""
    running = await relay_with(start_relay, tmp_path)
    owner = Keys()
    oc, rc = await authed(running, owner), await authed(running, Keys())
    kps = [kp(owner, age) for age in (40, 30, 20, 10)]
    for event in kps:
        await publish_ok(oc, event)
    served = [(await fetch(rc, owner, ids=[kps[1].id]))[0] for _ in range(3)]
    assert served == [[kps[1].id], [], []]
    newest_since = kps[3].created_at
    served = [(await fetch(rc, owner, since=newest_since))[0] for _ in range(2)]
    assert served == [[kps[3].id], []]
    events, _ = await oc.req("own", {"kinds": [443]})
    assert {e["id"] for e in events} == {kps[0].id, kps[2].id}


async def test_owner_lists_own_keypackages_without_consuming_them(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A 443 REQ naming oneself (or no authors) lists all own key packages, consuming none."""
    running = await relay_with(start_relay, tmp_path)
    owner = Keys()
    oc = await authed(running, owner)
    kps = {kp(owner, age).id: kp(owner, age) for age in (30, 20)}
    for event in kps.values():
        await publish_ok(oc, event)
    for _ in range(2):
        assert set((await fetch(oc, owner))[0]) == set(kps)
        events, _ = await oc.req("own", {"kinds": [443]})
        assert {e["id"] for e in events} == set(kps)


async def test_keypackage_req_without_authors_returns_only_own(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """No bulk harvesting: ``{"kinds":[443]}`` returns the requester's own key packages."""
    running = await relay_with(start_relay, tmp_path)
    alice, bob = Keys(), Keys()
    ac, bc = await authed(running, alice), await authed(running, bob)
    await publish_ok(ac, kp(alice))
    mine = kp(bob)
    await publish_ok(bc, mine)
    events, end = await bc.req("all", {"kinds": [443]})
    assert [e["id"] for e in events] == [mine.id] and end[0] == "EOSE"
    events, _ = await (await authed(running, Keys())).req("all", {"kinds": [443]})
    assert events == []


async def test_unauthenticated_keypackage_fetch_is_auth_required(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """An unauthenticated 443 REQ → CLOSED auth-required, nothing consumed."""
    running = await relay_with(start_relay, tmp_path)
    owner = Keys()
    oc = await authed(running, owner)
    event = kp(owner)
    await publish_ok(oc, event)
    anon = await running.client()
    ids, end = await fetch(anon, owner)
    assert ids == [] and end[0] == "CLOSED" and end[2].startswith("auth-required: ")
    assert (await fetch(await authed(running, Keys()), owner))[0] == [event.id]


async def test_fetch_rate_limit_closes_with_rate_limited(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Over keypackage_fetch_rate per requester→author: CLOSED "rate-limited:
    keypackage_fetch"; another requester, or another author, is still served."""
    running = await relay_with(start_relay, tmp_path, keypackage_fetch_rate=2)
    alice, bob = Keys(), Keys()
    ac, bc = await authed(running, alice), await authed(running, bob)
    for age in (50, 40, 30, 20):
        await publish_ok(ac, kp(alice, age))
    await publish_ok(bc, kp(bob))
    rc = await authed(running, Keys())
    for _ in range(2):
        assert len((await fetch(rc, alice))[0]) == 1
    ids, end = await fetch(rc, alice)
    assert ids == [] and end == ["CLOSED", "kp", "rate-limited: keypackage_fetch"]
    assert len((await fetch(rc, bob))[0]) == 1
    assert len((await fetch(await authed(running, Keys()), alice))[0]) == 1


async def test_fetch_rate_limit_is_per_listed_identity_not_per_key(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With an allowlist the fetch limit is charged to the connection's listed identity:
    authenticating one more (unlisted, lower) key, or a second listed key, on the same
    connection gives no new budget; another listed user has their own."""
    owner, requester, colleague = Keys(), Keys(), Keys()
    listed = (owner.pubkey, requester.pubkey, colleague.pubkey)
    running = await start_relay(
        make_config(
            tmp_path,
            auth={"pubkey_whitelist": listed},
            mls_gateway={"keypackage_fetch_rate": 2},
        )
    )
    oc = await authed(running, owner)
    for age in (50, 40, 30, 20, 10):
        await publish_ok(oc, kp(owner, age))
    rc = await authed(running, requester)
    for _ in range(2):
        assert len((await fetch(rc, owner))[0]) == 1
    assert (await fetch(rc, owner))[1] == ["CLOSED", "kp", "rate-limited: keypackage_fetch"]
    assert (await rc.authenticate(lower_than(requester)))[2] is True
    assert (await fetch(rc, owner))[1] == ["CLOSED", "kp", "rate-limited: keypackage_fetch"]
    assert (await rc.authenticate(colleague))[2] is True
    assert (await fetch(rc, owner))[1] == ["CLOSED", "kp", "rate-limited: keypackage_fetch"]
    again = await authed(running, requester)  # a new connection is the same identity
    assert (await fetch(again, owner))[1][0] == "CLOSED"
    # A refused fetch took nothing from the colleague's budget.
    assert len((await fetch(await authed(running, colleague), owner))[0]) == 1


async def test_fetch_rate_limit_without_allowlist_is_per_connection(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With an empty allowlist keys cost nothing to mint, so the limit is charged to the
    connection: more keys on it give no new budget."""
    running = await relay_with(start_relay, tmp_path, keypackage_fetch_rate=1)
    owner, requester = Keys(), Keys()
    oc = await authed(running, owner)
    for age in (30, 20, 10):
        await publish_ok(oc, kp(owner, age))
    rc = await authed(running, requester)
    assert len((await fetch(rc, owner))[0]) == 1
    assert (await rc.authenticate(lower_than(requester)))[2] is True
    assert (await fetch(rc, owner))[1] == ["CLOSED", "kp", "rate-limited: keypackage_fetch"]


async def test_fetch_rate_limit_serves_the_authors_still_allowed(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A REQ naming a limited and an allowed author gets the allowed one's key package."""
    running = await relay_with(start_relay, tmp_path, keypackage_fetch_rate=1)
    alice, bob = Keys(), Keys()
    ac, bc = await authed(running, alice), await authed(running, bob)
    await publish_ok(ac, kp(alice))
    bob_kp = kp(bob)
    await publish_ok(bc, bob_kp)
    rc = await authed(running, Keys())
    await fetch(rc, alice)
    ids, end = await fetch(rc, alice, bob)
    assert ids == [bob_kp.id] and end[0] == "EOSE"


async def test_keypackages_are_not_fanned_out_live_to_other_connections(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Live subscriptions never harvest others' key packages (R-M1b); the owner's own
    connections do get them live, and a fetch still serves (and consumes) them."""
    running = await relay_with(start_relay, tmp_path)
    owner, eve = Keys(), Keys()
    oc, other_device, ec = (
        await authed(running, owner),
        await authed(running, owner),
        await authed(running, eve),
    )
    subs = {"k": {"kinds": [443]}, "a": {"authors": [owner.pubkey]}, "all": {}}
    for client in (ec, other_device):
        for sub_id, f in subs.items():
            await client.send("REQ", sub_id, f)
            await client.recv_until("EOSE")
    event = kp(owner)
    await publish_ok(oc, event)
    sentinel = owner.sign(1, "sentinel")
    await publish_ok(oc, sentinel)
    for client, expected in ((ec, set()), (other_device, {event.id})):
        waiting, seen = {"a", "all"}, set()
        while waiting:
            msg = await client.recv()
            if msg[0] == "EVENT" and msg[2]["id"] == sentinel.id:
                waiting.discard(msg[1])
            elif msg[0] == "EVENT":
                seen.add(msg[2]["id"])
        assert seen == expected
    assert (await fetch(ec, owner))[0] == [event.id]


async def test_count_reveals_only_your_own_keypackages(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """COUNT of 443 does not tell others how many key packages an owner has left."""
    running = await relay_with(start_relay, tmp_path)
    owner, eve = Keys(), Keys()
    oc, ec = await authed(running, owner), await authed(running, eve)
    for age in (3, 2, 1):
        await publish_ok(oc, kp(owner, age))
    for client, expected in ((oc, 3), (ec, 0)):
        await client.send("COUNT", "c", {"kinds": [443], "authors": [owner.pubkey]})
        assert await client.recv_until("COUNT") == ["COUNT", "c", {"count": expected}]


async def test_consumed_keypackage_cannot_be_republished_by_another_connection(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Replaying a fetched (consumed) key package is restricted, so it stays consumed."""
    running = await relay_with(start_relay, tmp_path)
    owner = Keys()
    oc, ec, bc = [await authed(running, k) for k in (owner, Keys(), Keys())]
    first, second = kp(owner, 20), kp(owner, 10)
    for event in (first, second):
        await publish_ok(oc, event)
    assert (await fetch(ec, owner))[0] == [first.id]
    ok = await ec.publish(first)
    assert ok[2] is False and ok[3].startswith("restricted: "), ok
    assert (await fetch(bc, owner))[0] == [second.id]


async def test_keypackage_ingest_rejections_over_the_socket(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """R-M1 rejections reach the client as OK false with the reason; nothing is stored."""
    running = await relay_with(start_relay, tmp_path)
    owner = Keys()
    oc = await authed(running, owner)
    now = int(time.time())
    cases = [
        (kp(owner, tags=[["exp", str(now - 1)]]), "invalid: keypackage expired"),
        (kp(owner, tags=[["p", Keys().pubkey]]), "invalid: keypackage owner mismatch"),
        (kp(owner, content="not hex"), "invalid: keypackage content"),
        (kp(owner, tags=[["exp", "²"]]), "invalid: keypackage exp must be unix seconds"),
    ]
    for event, reason in cases:
        ok = await oc.publish(event)
        assert ok[2:] == [False, reason]
    assert (await oc.req("own", {"kinds": [443]}))[0] == []


async def test_keypackage_cap_evicts_the_owners_oldest(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """max_keypackages_per_user: storing one more evicts the oldest."""
    running = await relay_with(start_relay, tmp_path, max_keypackages_per_user=2)
    owner = Keys()
    oc = await authed(running, owner)
    kps = [kp(owner, age) for age in (30, 20, 10)]
    for event in kps:
        await publish_ok(oc, event)
    events, _ = await oc.req("own", {"kinds": [443]})
    assert {e["id"] for e in events} == {kps[1].id, kps[2].id}


async def test_last_resort_is_deleted_by_the_sweeper_after_the_grace_period(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Served last resort + fresh key packages → deleted by ``Relay.sweep`` once the grace
    period has passed, not before."""
    running = await relay_with(start_relay, tmp_path, last_resort_grace=600)
    owner = Keys()
    oc, rc = await authed(running, owner), await authed(running, Keys())
    last = kp(owner, 100)
    await publish_ok(oc, last)
    assert (await fetch(rc, owner))[0] == [last.id]
    fresh = [kp(owner, 20), kp(owner, 10)]
    for event in fresh:
        await publish_ok(oc, event)
    now = int(time.time())
    await running.relay.sweep(now + 300)
    own = {e["id"] for e in (await oc.req("own", {"kinds": [443]}))[0]}
    assert own == {last.id, *(e.id for e in fresh)}
    await running.relay.sweep(now + 601)
    own = {e["id"] for e in (await oc.req("own", {"kinds": [443]}))[0]}
    assert own == {e.id for e in fresh}


async def test_sweeper_archives_old_messages_and_expired_keypackages(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """After message_archive_ttl_days, 445/446/1059 are gone; expired key packages too;
    rosters and ordinary notes stay."""
    running = await relay_with(start_relay, tmp_path, message_archive_ttl_days=30)
    owner = Keys()
    oc = await authed(running, owner)
    t = Keys()
    roster = owner.sign(450, "", [["h", "g"], ["op", "bootstrap"], ["seq", "1"]])
    archived = [
        t.sign(445, "x", [["h", "g"]]),
        owner.sign(446, "x", [["p", owner.pubkey]]),
        t.sign(1059, "x", [["p", owner.pubkey]]),
    ]
    soon = kp(owner, tags=[["exp", str(int(time.time()) + 3600)]])
    note = owner.sign(1, "kept")
    for event in [roster, *archived, soon, note]:
        await publish_ok(oc, event)
    everything = {"ids": [e.id for e in [roster, *archived, soon, note]]}
    await running.relay.sweep(int(time.time()) + 2 * 3600)
    assert len((await oc.req("a", everything))[0]) == 5
    await running.relay.sweep(int(time.time()) + 31 * DAY)
    assert {e["id"] for e in (await oc.req("b", everything))[0]} == {roster.id, note.id}


async def test_messages_older_than_the_archive_are_refused_not_swept_after_ok(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A 445/446/1059 whose created_at is already past message_archive_ttl_days gets
    ``OK false "invalid: older than the message archive"``; one just inside the window is
    accepted and survives the next sweep."""
    running = await relay_with(start_relay, tmp_path, message_archive_ttl_days=30)
    owner, t = Keys(), Keys()
    oc = await authed(running, owner)
    await publish_ok(oc, owner.sign(450, "", [["h", "g"], ["op", "bootstrap"], ["seq", "1"]]))
    old = int(time.time()) - 31 * DAY
    for event in (
        t.sign(445, "x", [["h", "g"]], created_at=old),
        owner.sign(446, "x", [["p", owner.pubkey]], created_at=old),
        t.sign(1059, "x", [["p", owner.pubkey]], created_at=old),
    ):
        assert (await oc.publish(event))[2:] == [False, "invalid: older than the message archive"]
    inside = t.sign(1059, "x", [["p", owner.pubkey]], created_at=int(time.time()) - 29 * DAY)
    await publish_ok(oc, inside)
    await publish_ok(oc, owner.sign(1, "ordinary kinds are not archived", created_at=old))
    await running.relay.sweep(int(time.time()))
    assert [e["id"] for e in (await oc.req("kept", {"ids": [inside.id]}))[0]] == [inside.id]


# --- groups and other kinds ----------------------------------------------------------------


async def test_group_owner_is_the_authenticated_pubkey_not_the_throwaway_author(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """The first 445 creates the group owned by the connection's pubkey; epochs move
    forward only."""
    running = await relay_with(start_relay, tmp_path)
    owner, t = Keys(), Keys()
    oc = await authed(running, owner)
    for epoch in ("3", "5", "4"):
        await publish_ok(oc, t.sign(445, "x", [["h", "g"], ["k", epoch]]))
    state = running.relay.gateway.directory.get("g")
    assert state is not None and state.owner == owner.pubkey and state.last_epoch == 5


async def test_group_message_without_h_or_with_bad_epoch_is_invalid(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """R-M3 shape errors come back as OK false."""
    running = await relay_with(start_relay, tmp_path)
    oc = await authed(running, Keys())
    t = Keys()
    assert (await oc.publish(t.sign(445, "x")))[2:] == [False, "invalid: missing h"]
    two_groups = t.sign(445, "x", [["h", "g"], ["h", "other"]])
    assert (await oc.publish(two_groups))[2:] == [False, "invalid: exactly one h tag is allowed"]
    ok = await oc.publish(t.sign(445, "x", [["h", "g"], ["k", "9" * 40]]))
    assert ok[2] is False and ok[3].startswith("invalid: k (epoch)")


async def test_roster_rejections_over_the_socket(start_relay: StartRelay, tmp_path: Path) -> None:
    """R-M6 reasons reach the client: unknown group, stale seq, not an admin."""
    running = await relay_with(start_relay, tmp_path)
    owner, other = Keys(), Keys()
    oc, xc = await authed(running, owner), await authed(running, other)

    def roster(keys: Keys, op: str, seq: str, *p: Keys) -> Event:
        return keys.sign(
            450, "", [["h", "g"], ["op", op], ["seq", seq], *(["p", k.pubkey] for k in p)]
        )

    ok = await oc.publish(roster(owner, "add", "1", other))
    assert ok[2:] == [False, "invalid: group does not exist"]
    await publish_ok(oc, roster(owner, "bootstrap", "1"))
    assert (await oc.publish(roster(owner, "add", "1", other)))[2:] == [False, "invalid: stale seq"]
    ok = await xc.publish(roster(other, "add", "2", other))
    assert ok[2:] == [False, "restricted: not a group admin"]
    await publish_ok(oc, roster(owner, "add", "2", other))
    state = running.relay.gateway.directory.get("g")
    assert state is not None and other.pubkey in state.members and state.last_seq == 2


async def test_the_owner_of_a_group_a_445_created_may_add_a_member_who_then_reads(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A 445 creates the group with its connection's pubkey as owner: the owner's 450
    add is accepted without a bootstrap and the added member reads the group; another
    pubkey's add is refused as not a group admin."""
    running = await relay_with(start_relay, tmp_path)
    owner, member, other = Keys(), Keys(), Keys()
    oc, mc, xc = [await authed(running, k) for k in (owner, member, other)]
    message = Keys().sign(445, "x", [["h", "g"]])
    await publish_ok(oc, message)

    def add(keys: Keys, seq: str, who: Keys) -> Event:
        return keys.sign(450, "", [["h", "g"], ["op", "add"], ["seq", seq], ["p", who.pubkey]])

    ok = await xc.publish(add(other, "1", other))
    assert ok[2:] == [False, "restricted: not a group admin"]
    await publish_ok(oc, add(owner, "1", member))
    events, _ = await mc.req("g", {"kinds": [445], "#h": ["g"]})
    assert [e["id"] for e in events] == [message.id]
    await publish_ok(mc, Keys().sign(445, "y", [["h", "g"]]))
    events, _ = await xc.req("g", {"kinds": [445], "#h": ["g"]})
    assert events == []


async def test_global_admin_pubkeys_administer_every_group(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``admin_pubkeys`` may publish rosters and read any group's messages."""
    root, owner = Keys(), Keys()
    running = await relay_with(start_relay, tmp_path, admin_pubkeys=(root.pubkey,))
    oc, rootc = await authed(running, owner), await authed(running, root)
    await publish_ok(oc, owner.sign(450, "", [["h", "g"], ["op", "bootstrap"], ["seq", "1"]]))
    message = Keys().sign(445, "x", [["h", "g"]])
    await publish_ok(oc, message)
    add = root.sign(450, "", [["h", "g"], ["op", "add"], ["seq", "2"], ["p", Keys().pubkey]])
    await publish_ok(rootc, add)
    events, _ = await rootc.req("g", {"kinds": [445], "#h": ["g"]})
    assert [e["id"] for e in events] == [message.id]


async def test_other_kinds_shape_rules_over_the_socket(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """R-M2 top-level welcome, R-M4 one recipient, R-M5 gift wrap recipient, R-M8 relays."""
    running = await relay_with(start_relay, tmp_path)
    keys = Keys()
    c = await authed(running, keys)
    p = ["p", Keys().pubkey]
    cases = [
        (keys.sign(444, "w"), "invalid: welcome must be gift-wrapped"),
        (
            keys.sign(446, "x", [p, ["p", Keys().pubkey]]),
            "invalid: noise DM needs exactly one p tag",
        ),
        (keys.sign(1059, "x"), "invalid: gift wrap needs a p tag"),
        (keys.sign(10051, "", [["relay", "https://x.example"]]), "invalid: keypackage relay list"),
    ]
    for event, reason in cases:
        ok = await c.publish(event)
        assert ok[2] is False and ok[3].startswith(reason), ok
    await publish_ok(c, keys.sign(446, "x", [p, ["v", "noise.1"]]))


async def test_keypackage_relay_list_is_replaceable(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """10051: a newer list replaces the older one."""
    running = await relay_with(start_relay, tmp_path)
    keys = Keys()
    c = await authed(running, keys)
    now = int(time.time())
    old = keys.sign(10051, "", [["relay", "wss://a.example"]], created_at=now - 10)
    new = keys.sign(10051, "", [["relay", "wss://b.example"]], created_at=now)
    await publish_ok(c, old)
    await publish_ok(c, new)
    events, _ = await c.req("l", {"kinds": [10051], "authors": [keys.pubkey]})
    assert [e["id"] for e in events] == [new.id]


# --- metrics -------------------------------------------------------------------------------


async def mls_metrics(running: RunningRelay) -> dict[str, float]:
    reply = await http_request(running.http_url + "/metrics")
    assert reply.status == 200
    values = {}
    for line in reply.body.decode().splitlines():
        if line.startswith("mls_gateway_") and "_created" not in line.split(" ")[0]:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_metrics_expose_mls_gateway_counters_that_move(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Every ``mls_gateway_*`` counter of R-H2 is exported and counts what happened."""
    running = await relay_with(start_relay, tmp_path)
    owner, member = Keys(), Keys()
    oc, rc = await authed(running, owner), await authed(running, Keys())
    before = await mls_metrics(running)
    for age in (20, 10):
        await publish_ok(oc, kp(owner, age))
    await fetch(rc, owner)
    bootstrap = owner.sign(450, "", [["h", "g"], ["op", "bootstrap"], ["seq", "1"]])
    await publish_ok(oc, bootstrap)
    await publish_ok(
        oc, owner.sign(450, "", [["h", "g"], ["op", "add"], ["seq", "2"], ["p", member.pubkey]])
    )
    await publish_ok(oc, Keys().sign(445, "x", [["h", "g"]]))
    await running.relay.sweep(int(time.time()) + 31 * DAY)
    after = await mls_metrics(running)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved("mls_gateway_keypackages_stored_total") == 2
    assert moved("mls_gateway_keypackages_consumed_total") == 1
    assert moved('mls_gateway_events_processed_total{kind="443"}') == 2
    assert moved('mls_gateway_events_processed_total{kind="450"}') == 2
    assert moved('mls_gateway_events_processed_total{kind="445"}') == 1
    assert moved("mls_gateway_roster_policy_updates_total") == 2
    assert moved("mls_gateway_groups_updated_total") == 2  # the 445 changes no state
    assert moved("mls_gateway_membership_updates_total") == 2
    assert moved("mls_gateway_archive_swept_total") == 1
    assert moved('mls_gateway_keypackages_swept_total{reason="expired"}') == 1
