"""MLS state across restarts (R-M1b, R-M7, R-M10): a new relay on the same data directory
keeps memberships, rosters and pending last-resort deletions, and its sweeper executes them."""

from __future__ import annotations

import time
from pathlib import Path

from relay.config import Config
from relay.core.event import Event
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import Keys, RelayClient

OWNER, MEMBER, INVITEE, REMOVED, OUTSIDER, REQUESTER = (Keys() for _ in range(6))
G = "restart-group"
GRACE = 600


async def authed(running: RunningRelay, keys: Keys) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys))[2] is True
    return client


async def publish_ok(client: RelayClient, event: Event) -> None:
    ok = await client.publish(event)
    assert ok[2] is True, ok


async def restart(start_relay: StartRelay, running: RunningRelay, config: Config) -> RunningRelay:
    """Stop ``running`` (server and store) and start a new relay on the same data dir."""
    await running.server.shutdown(2.0)
    await running.relay.store.close()
    again: RunningRelay = await start_relay(config)
    return again


def roster(op: str, seq: int, *targets: Keys) -> Event:
    tags = [["h", G], ["op", op], ["seq", str(seq)], *(["p", t.pubkey] for t in targets)]
    return OWNER.sign(450, "", tags)


async def test_memberships_and_rosters_survive_a_restart(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Members, invitees and removals apply after a restart, and roster ``seq`` continues."""
    config = make_config(tmp_path, mls_gateway={"last_resort_grace": GRACE})
    running = await start_relay(config)
    oc = await authed(running, OWNER)
    throwaway = Keys()
    await publish_ok(oc, roster("bootstrap", 1, MEMBER, REMOVED))
    await publish_ok(oc, roster("remove", 2, REMOVED))
    await publish_ok(oc, throwaway.sign(1059, "welcome", [["p", INVITEE.pubkey], ["h", G]]))
    before = throwaway.sign(445, "before restart", [["h", G], ["k", "7"]])
    await publish_ok(oc, before)

    running = await restart(start_relay, running, config)
    state = running.relay.gateway.directory.get(G)
    assert state is not None and state.owner == OWNER.pubkey and state.last_epoch == 7

    for keys, reads in ((MEMBER, True), (INVITEE, True), (REMOVED, False), (OUTSIDER, False)):
        client = await authed(running, keys)
        events, _ = await client.req("g", {"#h": [G], "kinds": [445]})
        assert (before.id in {e["id"] for e in events}) is reads, keys
        ok = await client.publish(Keys().sign(445, "after", [["h", G]]))
        assert ok[2] is reads, (keys, ok)

    oc = await authed(running, OWNER)
    ok = await oc.publish(roster("add", 2, OUTSIDER))
    assert ok[2:] == [False, "invalid: stale seq"]
    await publish_ok(oc, roster("add", 3, OUTSIDER))


async def test_pending_last_resort_deletion_survives_a_restart(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A last resort scheduled for deletion before a restart is deleted by the new relay's
    sweeper once the grace period is over — not before."""
    config = make_config(tmp_path, mls_gateway={"last_resort_grace": GRACE})
    running = await start_relay(config)
    oc, rc = await authed(running, OWNER), await authed(running, REQUESTER)
    now = int(time.time())
    last = OWNER.sign(443, "01", [], created_at=now - 100)
    await publish_ok(oc, last)
    events, _ = await rc.req("kp", {"kinds": [443], "authors": [OWNER.pubkey]})
    assert [e["id"] for e in events] == [last.id]
    fresh = OWNER.sign(443, "02", [], created_at=now - 50)
    await publish_ok(oc, fresh)
    scheduled_at = int(time.time())

    running = await restart(start_relay, running, config)
    oc = await authed(running, OWNER)

    async def own() -> set[str]:
        events, _ = await oc.req("own", {"kinds": [443]})
        return {e["id"] for e in events}

    await running.relay.sweep(now + GRACE - 1)
    assert await own() == {last.id, fresh.id}
    await running.relay.sweep(scheduled_at + GRACE)
    assert await own() == {fresh.id}


async def test_served_last_resort_is_remembered_across_a_restart(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """The "served as last resort" mark is durable: fresh key packages published after a
    restart still schedule the old one's deletion."""
    config = make_config(tmp_path, mls_gateway={"last_resort_grace": GRACE})
    running = await start_relay(config)
    oc, rc = await authed(running, OWNER), await authed(running, REQUESTER)
    now = int(time.time())
    last = OWNER.sign(443, "01", [], created_at=now - 100)
    await publish_ok(oc, last)
    await rc.req("kp", {"kinds": [443], "authors": [OWNER.pubkey]})

    running = await restart(start_relay, running, config)
    oc, rc = await authed(running, OWNER), await authed(running, REQUESTER)
    fresh = OWNER.sign(443, "02", [], created_at=now - 50)
    await publish_ok(oc, fresh)
    events, _ = await rc.req("kp", {"kinds": [443], "authors": [OWNER.pubkey]})
    assert [e["id"] for e in events] == [fresh.id]
    await running.relay.sweep(int(time.time()) + GRACE)
    events, _ = await oc.req("own", {"kinds": [443]})
    assert [e["id"] for e in events] == [fresh.id]
