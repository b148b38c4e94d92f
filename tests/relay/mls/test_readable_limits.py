"""A REQ's ``limit`` counts what the reader may see (R-A3, R-P5) over real sockets: newer
restricted events addressed to others never crowd out the reader's own."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import Keys, RelayClient

OWNER, RECIPIENT, OTHER = Keys(), Keys(), Keys()


async def authed(running: RunningRelay, keys: Keys) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys))[2] is True
    return client


async def ids_of(client: RelayClient, f: dict[str, object]) -> list[str]:
    events, end = await client.req("q", f)
    assert end[0] == "EOSE", end
    return [e["id"] for e in events]


async def test_a_recipients_gift_wraps_are_not_crowded_out_by_newer_ones_to_others(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``{"kinds":[1059],"limit":5}`` returns the recipient's own wraps, newest first,
    although 8 newer wraps to others exist."""
    running = await start_relay(make_config(tmp_path))
    sender = await authed(running, OWNER)
    throwaway, now = Keys(), int(time.time())
    own = [
        throwaway.sign(1059, f"mine{i}", [["p", RECIPIENT.pubkey]], created_at=now - 100 - i)
        for i in range(3)
    ]
    others = [
        throwaway.sign(1059, f"other{i}", [["p", OTHER.pubkey]], created_at=now - i)
        for i in range(8)
    ]
    for event in [*own, *others]:
        assert (await sender.publish(event))[2] is True
    recipient = await authed(running, RECIPIENT)
    assert await ids_of(recipient, {"kinds": [1059], "limit": 5}) == [e.id for e in own]
    assert await ids_of(recipient, {"kinds": [1059], "limit": 2}) == [e.id for e in own[:2]]
    assert await ids_of(recipient, {"kinds": [446, 1059], "limit": 1}) == [own[0].id]


async def test_a_members_group_messages_are_not_crowded_out_by_other_groups(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``{"kinds":[445],"limit":2}`` returns the member's groups' messages although newer
    messages of groups it is not in exist."""
    running = await start_relay(make_config(tmp_path))
    owner, other = await authed(running, OWNER), await authed(running, OTHER)
    bootstrap = OWNER.sign(450, "", [["h", "mine"], ["op", "bootstrap"], ["seq", "1"]])
    assert (await owner.publish(bootstrap))[2] is True
    elsewhere = OTHER.sign(450, "", [["h", "theirs"], ["op", "bootstrap"], ["seq", "1"]])
    assert (await other.publish(elsewhere))[2] is True
    t, now = Keys(), int(time.time())
    mine = [t.sign(445, f"m{i}", [["h", "mine"]], created_at=now - 50 - i) for i in range(2)]
    for event in mine:
        assert (await owner.publish(event))[2] is True
    for i in range(6):
        event = t.sign(445, f"t{i}", [["h", "theirs"]], created_at=now - i)
        assert (await other.publish(event))[2] is True
    assert await ids_of(owner, {"kinds": [445], "limit": 2}) == [e.id for e in mine]
    got = await ids_of(owner, {"kinds": [445, 450], "limit": 3})
    assert set(got) == {bootstrap.id, *(e.id for e in mine)}


async def test_a_kindless_filter_reads_past_restricted_events_it_may_not_see(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``{"limit":2}`` (no kinds) still fills its limit with what the reader may see when
    the newest stored events are gift wraps to someone else."""
    running = await start_relay(make_config(tmp_path))
    sender = await authed(running, OWNER)
    now = int(time.time())
    notes = [OWNER.sign(1, f"note{i}", created_at=now - 100 - i) for i in range(2)]
    for event in notes:
        assert (await sender.publish(event))[2] is True
    t = Keys()
    for i in range(10):
        wrap = t.sign(1059, f"w{i}", [["p", OTHER.pubkey]], created_at=now - i)
        assert (await sender.publish(wrap))[2] is True
    reader = await authed(running, RECIPIENT)
    assert await ids_of(reader, {"limit": 2}) == [e.id for e in notes]
    anonymous = await running.client()
    assert await ids_of(anonymous, {"limit": 2}) == [e.id for e in notes]


async def test_the_publishing_connection_still_reads_its_own_throwaway_wraps(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """The connection that published a gift wrap (throw-away author, someone else's p)
    reads it back within its limit: narrowing keeps every way of being allowed."""
    running = await start_relay(make_config(tmp_path))
    sender = await authed(running, OWNER)
    t, now = Keys(), int(time.time())
    sent = t.sign(1059, "sent", [["p", OTHER.pubkey]], created_at=now - 100)
    assert (await sender.publish(sent))[2] is True
    other_sender = await authed(running, OTHER)
    for i in range(5):
        wrap = Keys().sign(1059, f"x{i}", [["p", RECIPIENT.pubkey]], created_at=now - i)
        assert (await other_sender.publish(wrap))[2] is True
    assert await ids_of(sender, {"kinds": [1059], "limit": 1}) == [sent.id]
