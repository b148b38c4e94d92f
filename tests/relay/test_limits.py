"""Bounded cost per subscription over real sockets (issue 8 points 2, 3 and 4): fan-out
through the subscription index, filter values per connection, COUNT in the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import Keys, RelayClient

ALICE, BOB, CAROL = Keys(), Keys(), Keys()


def metric(running: RunningRelay, name: str) -> float | None:
    return running.relay.metrics.registry.get_sample_value(name)


# --- point 2: subscriptions are matched through an index -------------------------------------


async def test_an_event_with_many_tags_costs_its_candidates_not_every_filter(
    running: RunningRelay,
) -> None:
    """4 connections × 50 REQs × 20 ``#t`` filters; 10 events of 1,999 tags, each with
    one value a single filter asks for: each reaches exactly that subscription, and the
    relay checks one filter per event instead of 4,000."""
    clients = [await running.client() for _ in range(4)]
    for c, client in enumerate(clients):
        for s in range(50):
            filters = [{"#t": [f"c{c}s{s}f{f}v{v}" for v in range(5)]} for f in range(20)]
            assert (await client.req(f"s{s}", *filters))[1] == ["EOSE", f"s{s}"]
    publisher = await running.client()
    checks_before = metric(running, "nostr_relay_fanout_filter_checks_total") or 0.0
    targets = [(i % 4, (7 * i) % 50, i % 20) for i in range(10)]
    for i, (c, s, f) in enumerate(targets):
        tags = [["t", f"noise{i}x{n}"] for n in range(1998)] + [["t", f"c{c}s{s}f{f}v3"]]
        event = ALICE.sign(1, f"event {i}", tags)
        assert (await publisher.publish(event))[2] is True
        delivered = await clients[c].recv_until("EVENT")
        assert delivered[1] == f"s{s}" and delivered[2]["id"] == event.id
    for client in clients:
        assert await client.nothing_within(0.2)
    checks = (metric(running, "nostr_relay_fanout_filter_checks_total") or 0.0) - checks_before
    assert checks == len(targets)
    # Close here: at shutdown each would get 50 CLOSED frames it never reads, and the
    # websockets client stops reading (and closing) once its queue is full.
    for client in [*clients, publisher]:
        await client.close()


# --- point 3: filter values per connection ----------------------------------------------------


def authors(n: int, start: int) -> list[str]:
    return [f"{i:064x}" for i in range(start, start + n)]


async def test_filter_values_beyond_the_default_limit_are_closed_naming_it(
    running: RunningRelay,
) -> None:
    """With the default limits, 7 filters × 1,000 authors fit once; the next such REQ is
    CLOSED naming limitation.max_filter_values and the first one keeps receiving."""
    client = await running.client()
    first = [{"authors": authors(1000, 1000 * f), "kinds": [1]} for f in range(7)]
    assert (await client.req("one", *first))[1] == ["EOSE", "one"]
    second = [{"authors": authors(1000, 10_000 + 1000 * f)} for f in range(7)]
    _, end = await client.req("two", *second)
    assert end[:2] == ["CLOSED", "two"]
    assert end[2].startswith("restricted: ") and "limitation.max_filter_values = 10000" in end[2]
    await client.req("mine", {"authors": [ALICE.pubkey]})
    event = ALICE.sign(1, "still live")
    publisher = await running.client()
    await publisher.publish(event)
    assert (await client.recv_until("EVENT"))[1:3] == ["mine", event.to_dict()]


# --- point 4: COUNT is bounded ------------------------------------------------------------------


async def authed(running: RunningRelay, keys: Keys) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys))[2] is True
    return client


async def count(client: RelayClient, *filters: dict[str, Any]) -> dict[str, Any]:
    await client.send("COUNT", "n", *filters)
    reply = await client.recv_until("COUNT")
    assert reply[1] == "n"
    result: dict[str, Any] = reply[2]
    return result


async def test_count_ignores_limit_and_counts_only_what_the_reader_may_see(
    running: RunningRelay,
) -> None:
    """3 gift wraps to Bob, then 8 newer ones to Carol: Bob's COUNT with ``limit`` 2
    counts his 3 (a limit neither truncates nor loads), with or without ``kinds``."""
    sender = await authed(running, ALICE)
    for i in range(3):
        wrap = Keys().sign(1059, f"to bob {i}", [["p", BOB.pubkey]], created_at=_ago(100 - i))
        assert (await sender.publish(wrap))[2] is True
    for i in range(8):
        wrap = Keys().sign(1059, f"to carol {i}", [["p", CAROL.pubkey]], created_at=_ago(50 - i))
        assert (await sender.publish(wrap))[2] is True
    for i in range(2):
        assert (await sender.publish(ALICE.sign(1, f"note {i}")))[2] is True
    bob = await authed(running, BOB)
    assert await count(bob, {"kinds": [1059], "limit": 2}) == {"count": 3}
    assert await count(bob, {"limit": 1}) == {"count": 5}
    assert await count(bob, {"kinds": [1059, 1], "limit": 1}) == {"count": 5}
    carol = await authed(running, CAROL)
    assert await count(carol, {"kinds": [1059]}) == {"count": 8}
    stranger = await running.client()
    assert await count(stranger, {}) == {"count": 2}


def _ago(seconds: int) -> int:
    return int(time.time()) - seconds


async def test_a_limit_never_raises_the_count_cap(start_relay: StartRelay, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", limitation={"max_count": 5})
    running: RunningRelay = await start_relay(config)
    publisher = await running.client()
    for i in range(8):
        assert (await publisher.publish(ALICE.sign(1, f"note {i}")))[2] is True
    reader = await running.client()
    capped = {"count": 5, "approximate": True}
    assert await count(reader, {"kinds": [1], "limit": 100}) == capped
    assert await count(reader, {"limit": 100}) == capped
    assert await count(reader, {"kinds": [1], "limit": 100, "authors": [BOB.pubkey]}) == {
        "count": 0
    }
