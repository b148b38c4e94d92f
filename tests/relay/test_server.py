"""relay.server over real sockets: NIP-01 flows, rejections, slow consumers, liveness."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from coincurve import PrivateKey
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame

from relay.config import RateRule
from relay.core.event import compute_id
from relay.core.policy import ip_permitted
from relay.core.session import MESSAGE_BURST_SECONDS
from relay.publisher import VERIFY_IN_THREAD_MIN
from relay.server import client_ip
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.http import http_request
from tests.support.nostr import TIMEOUT, Keys, RawClient, RelayClient, lower_than
from tests.support.stores import FlakyStore

ALICE, BOB = Keys(), Keys()


async def started_with(start_relay: StartRelay, tmp_path: Path, **sections: Any) -> RunningRelay:
    relay: RunningRelay = await start_relay(make_config(tmp_path / "data", **sections))
    return relay


# --- NIP-01 flows ------------------------------------------------------------------------------


async def test_unauthenticated_client_gets_a_challenge_on_connect(running: RunningRelay) -> None:
    """With auth enabled (default) the first frame is ``["AUTH", <random challenge>]``."""
    first, second = await running.client(), await running.client()
    one, two = await first.get_challenge(), await second.get_challenge()
    assert one != two and len(one) >= 32


async def test_stored_events_then_eose_then_live_events(running: RunningRelay) -> None:
    """A REQ gets stored matches newest first, EOSE, then live events until CLOSE."""
    publisher, subscriber = await running.client(), await running.client()
    now = int(time.time())
    old = ALICE.sign(1, "old", created_at=now - 10)
    new = ALICE.sign(1, "new", created_at=now - 5)
    for event in (old, new):
        assert (await publisher.publish(event))[2] is True
    events, end = await subscriber.req("s", {"kinds": [1]})
    assert [e["id"] for e in events] == [new.id, old.id] and end == ["EOSE", "s"]
    live = ALICE.sign(1, "live")
    await publisher.publish(live)
    assert await subscriber.recv_until("EVENT") == ["EVENT", "s", live.to_dict()]
    await subscriber.send("CLOSE", "s")
    after = ALICE.sign(1, "after close")
    await publisher.publish(after)
    assert await subscriber.nothing_within(0.3)


async def test_live_events_only_reach_matching_subscriptions(running: RunningRelay) -> None:
    """Fan-out applies each subscription's filters."""
    publisher, subscriber = await running.client(), await running.client()
    await subscriber.req("notes", {"kinds": [1]})
    await subscriber.req("bob", {"authors": [BOB.pubkey]})
    await publisher.publish(ALICE.sign(7, "+"))
    event = BOB.sign(1, "hi")
    await publisher.publish(event)
    got = {tuple((await subscriber.recv_until("EVENT"))[:2]) for _ in range(2)}
    assert got == {("EVENT", "notes"), ("EVENT", "bob")}
    assert await subscriber.nothing_within(0.2)


async def test_publisher_also_receives_its_own_event_live(running: RunningRelay) -> None:
    """A connection subscribed to its own events gets them after the OK."""
    client = await running.client()
    await client.req("mine", {"authors": [ALICE.pubkey]})
    event = ALICE.sign(1, "echo")
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert (await client.recv_until("EVENT"))[2]["id"] == event.id


async def test_req_with_an_existing_id_replaces_it(running: RunningRelay) -> None:
    """Re-sending REQ with the same sub id swaps the filters."""
    publisher, subscriber = await running.client(), await running.client()
    await subscriber.req("s", {"kinds": [1]})
    await subscriber.req("s", {"kinds": [7]})
    await publisher.publish(ALICE.sign(1, "not any more"))
    reaction = ALICE.sign(7, "+")
    await publisher.publish(reaction)
    assert (await subscriber.recv_until("EVENT"))[1:] == ["s", reaction.to_dict()]
    assert await subscriber.nothing_within(0.2)


async def test_limit_and_max_limit(start_relay: StartRelay, tmp_path: Path) -> None:
    """``limit`` caps stored results (0: live only); missing or larger → max_limit."""
    running = await started_with(start_relay, tmp_path, limitation={"max_limit": 3})
    client = await running.client()
    now = int(time.time())
    for i in range(5):
        await client.publish(ALICE.sign(1, str(i), created_at=now - i))
    assert [e["content"] for e in (await client.req("a", {"limit": 2}))[0]] == ["0", "1"]
    assert len((await client.req("b", {}))[0]) == 3
    assert len((await client.req("c", {"limit": 100}))[0]) == 3
    listener = await running.client()
    events, end = await listener.req("live-only", {"limit": 0})
    assert events == [] and end == ["EOSE", "live-only"]
    live = ALICE.sign(1, "live")
    await client.publish(live)
    assert (await listener.recv_until("EVENT"))[1:] == ["live-only", live.to_dict()]


async def test_count(running: RunningRelay) -> None:
    """NIP-45 COUNT answers ``["COUNT", id, {"count": n}]``."""
    client = await running.client()
    for i in range(3):
        await client.publish(ALICE.sign(1, str(i)))
    await client.publish(BOB.sign(1, "b"))
    await client.send("COUNT", "n", {"authors": [ALICE.pubkey]})
    assert await client.recv_until("COUNT") == ["COUNT", "n", {"count": 3}]
    await client.send("COUNT", "m", {"kinds": [1]}, {"authors": [BOB.pubkey]})
    assert await client.recv_until("COUNT") == ["COUNT", "m", {"count": 4}]


async def test_ephemeral_events_are_fanned_out_and_never_stored(running: RunningRelay) -> None:
    """Kind 20000–29999: OK true, delivered live, absent from later REQs."""
    publisher, subscriber = await running.client(), await running.client()
    await subscriber.req("eph", {"kinds": [20001]})
    event = ALICE.sign(20001, "typing")
    assert await publisher.publish(event) == ["OK", event.id, True, ""]
    assert (await subscriber.recv_until("EVENT"))[2]["id"] == event.id
    assert (await publisher.req("later", {"kinds": [20001]}))[0] == []


async def test_duplicate_is_ok_and_not_fanned_out_again(running: RunningRelay) -> None:
    """The same event twice → ``OK true "duplicate: …"`` and no second delivery."""
    publisher, subscriber = await running.client(), await running.client()
    await subscriber.req("s", {})
    event = ALICE.sign(1, "once")
    await publisher.publish(event)
    await subscriber.recv_until("EVENT")
    assert await publisher.publish(event) == [
        "OK",
        event.id,
        True,
        "duplicate: already have this event",
    ]
    assert await subscriber.nothing_within(0.3)


async def test_deleted_event_is_blocked_and_gone(running: RunningRelay) -> None:
    """After a NIP-09 deletion the event is gone and republishing it is ``blocked:``."""
    client = await running.client()
    event = ALICE.sign(1, "regret")
    await client.publish(event)
    await client.publish(ALICE.sign(5, "", [["e", event.id]]))
    assert (await client.req("s", {"ids": [event.id]}))[0] == []
    reply = await client.publish(event)
    assert reply[:3] == ["OK", event.id, False] and reply[3].startswith("blocked: ")


async def test_superseded_replaceable_is_a_duplicate_rejection(running: RunningRelay) -> None:
    """An older version of a replaceable event → ``OK false "duplicate: …"``."""
    client = await running.client()
    now = int(time.time())
    await client.publish(ALICE.sign(0, "{}", created_at=now))
    reply = await client.publish(ALICE.sign(0, "{}", created_at=now - 1))
    assert reply[2] is False and reply[3].startswith("duplicate: ")


# --- rejections over the wire --------------------------------------------------------------------


async def test_invalid_events_are_refused_with_the_invalid_prefix(running: RunningRelay) -> None:
    """Bad sig/id/hex/types, expired, out of window, kind 22242 → OK <id> false invalid."""
    client = await running.client()
    now = int(time.time())
    good = ALICE.sign(1, "x").to_dict()
    cases = [
        {**good, "sig": BOB.sign(1, "x").sig},
        {**good, "content": "tampered"},
        {**good, "pubkey": good["pubkey"].upper()},
        {**good, "kind": "1"},
        {**good, "tags": [["t", 1]]},
        {**good, "created_at": 1.5},
        ALICE.sign(1, "", [["expiration", str(now - 1)]]).to_dict(),
        ALICE.sign(1, "", created_at=now - 4 * 365 * 86400).to_dict(),
        ALICE.sign(1, "", created_at=now + 3600).to_dict(),
        ALICE.sign(22242, "", [["challenge", await client.get_challenge()]]).to_dict(),
    ]
    for obj in cases:
        await client.send("EVENT", obj)
        reply = await client.recv_until("OK")
        assert reply[:3] == ["OK", obj["id"], False] and reply[3].startswith("invalid: "), reply


async def test_too_many_tags_and_oversize_messages(start_relay: StartRelay, tmp_path: Path) -> None:
    """max_event_tags and max_message_length are enforced with ``invalid:``."""
    running = await started_with(
        start_relay, tmp_path, limitation={"max_event_tags": 2, "max_message_length": 2000}
    )
    client = await running.client()
    tags = await client.publish(ALICE.sign(1, "", [["t", "a"], ["t", "b"], ["t", "c"]]))
    assert tags[2] is False and tags[3] == "invalid: too many tags (max 2)"
    big = await client.publish(ALICE.sign(1, "x" * 3000))
    assert big[2] is False and big[3].startswith("invalid: message is")
    ok = await client.publish(ALICE.sign(1, "small"))
    assert ok[2] is True


async def test_frames_far_beyond_the_limit_close_the_connection_politely(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A frame over twice max_message_length is refused unread by the WebSocket layer:
    a NOTICE names its size and the limit, then the connection closes with 1009."""
    running = await started_with(start_relay, tmp_path, limitation={"max_message_length": 1000})
    client = await running.client(max_size=None)
    await client.send_raw("x" * 200_000)
    notice = await client.recv()
    assert notice == ["NOTICE", "invalid: message is 200000 bytes, the limit is 1000"]
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_malformed_frames_get_a_notice_and_the_connection_stays_open(
    running: RunningRelay,
) -> None:
    """Non-JSON, unknown commands and binary frames get NOTICEs; the connection still works."""
    client = await running.client()
    await client.send_raw("this is not json")
    assert (await client.recv_until("NOTICE"))[1].startswith("invalid: ")
    await client.send("HELLO")
    assert (await client.recv_until("NOTICE"))[1] == "invalid: unknown command 'HELLO'"
    await client.send_raw(b"\xff\xfe binary garbage")
    assert (await client.recv_until("NOTICE"))[1].startswith("invalid: ")
    event = ALICE.sign(1, "still here")
    await client.send_raw(orjson.dumps(["EVENT", event.to_dict()]))  # JSON in a binary frame
    assert await client.recv_until("OK") == ["OK", event.id, True, ""]


async def test_hostile_values_get_precise_answers(running: RunningRelay) -> None:
    """Out-of-range numbers and non-ASCII digits get OK/CLOSED, never an internal error."""
    client = await running.client()
    end = (await client.req("big", {"since": 2**64 - 1}))[1]
    assert end[:2] == ["CLOSED", "big"] and end[2].startswith("invalid: ")
    await client.send_raw('["REQ","huge",{"until":1e400}]')
    notice = await client.recv_until("NOTICE")
    assert notice[1].startswith("invalid: ")
    for tags in (
        [["expiration", "²"]],
        [["expiration", "9" * 5000]],
        [["a", f"²:{ALICE.pubkey}:x"], ["a", f"{'9' * 30}:{ALICE.pubkey}:x"]],
    ):
        event = ALICE.sign(5 if tags[0][0] == "a" else 1, "", tags)
        assert await client.publish(event) == ["OK", event.id, True, ""]
    assert (await client.req("still", {}))[1] == ["EOSE", "still"]


async def test_req_limits_are_closed_with_prefixes(start_relay: StartRelay, tmp_path: Path) -> None:
    """max_subscriptions → restricted; max_filters and max_subid_length → invalid."""
    running = await started_with(
        start_relay,
        tmp_path,
        limitation={"max_subscriptions": 2, "max_filters": 2, "max_subid_length": 8},
    )
    client = await running.client()
    assert (await client.req("a", {}))[1] == ["EOSE", "a"]
    assert (await client.req("b", {}))[1] == ["EOSE", "b"]
    end = (await client.req("c", {}))[1]
    assert end[:2] == ["CLOSED", "c"] and end[2].startswith("restricted: ")
    end = (await client.req("a", {}, {}, {}))[1]
    assert end == ["CLOSED", "a", "invalid: too many filters (max 2)"]
    end = (await client.req("123456789", {}))[1]
    assert end[:2] == ["CLOSED", "123456789"] and end[2].startswith("invalid: ")
    end = (await client.req("bad", {"kinds": ["1"]}))[1]
    assert end[:2] == ["CLOSED", "bad"] and end[2].startswith("invalid: ")


async def test_kind_rate_limit_replies_rate_limited_with_the_rule_name(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Over a [[rate_limiter.event]] rule → ``OK false "rate-limited: <name>"``."""
    running = await started_with(
        start_relay,
        tmp_path,
        rate_limiter={"event": (RateRule("notes", 2, 3600.0, (1,)),)},
    )
    client = await running.client()
    for i in range(2):
        assert (await client.publish(ALICE.sign(1, str(i))))[2] is True
    event = ALICE.sign(1, "third")
    assert await client.publish(event) == ["OK", event.id, False, "rate-limited: notes"]
    registry = running.relay.metrics.registry
    assert registry.get_sample_value("nostr_relay_rate_limited_total", {"name": "notes"}) == 1
    other = await running.client()
    assert (await other.publish(ALICE.sign(7, "+")))[2] is True  # another kind is not limited


async def test_message_rate_cap_replies_rate_limited(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Over ``messages_per_second`` (frozen clock) EVENT → OK and REQ → CLOSED rate-limited."""
    frozen = time.time()
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", rate_limiter={"messages_per_second": 2}),
        clock=lambda: frozen,
    )
    client = await running.client()
    for n in range(2 * MESSAGE_BURST_SECONDS):  # the burst the cap holds
        await client.req(f"s{n}", {})
    end = (await client.req("c", {}))[1]
    assert end == ["CLOSED", "c", "rate-limited: too many messages per second"]
    event = ALICE.sign(1, "x", created_at=int(frozen))
    assert await client.publish(event) == [
        "OK",
        event.id,
        False,
        "rate-limited: too many messages per second",
    ]
    fresh = await running.client()  # the cap is per connection
    assert (await fresh.req("d", {}))[1] == ["EOSE", "d"]


async def test_an_rnostr_range_rule_limits_over_sockets_and_skips_its_whitelisted_ips(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``kinds = [[0, 40000]]`` limits kind 1; the same rule with ``ip_whitelist`` naming
    the client's address lets it through (rnostr semantics, R-C1/R-A5)."""
    ranged = RateRule("all", 1, 3600.0, ((0, 40000),))
    running = await started_with(start_relay, tmp_path, rate_limiter={"event": (ranged,)})
    client = await running.client()
    assert (await client.publish(ALICE.sign(1, "a")))[2] is True
    assert (await client.publish(ALICE.sign(30023, "b", [["d", "x"]])))[3] == "rate-limited: all"
    assert (await client.publish(ALICE.sign(40000, "c")))[2] is True  # the end is excluded

    exempt = dataclasses.replace(ranged, ip_whitelist=("127.0.0.0/8",))
    running = await started_with(
        start_relay, tmp_path / "exempt", rate_limiter={"event": (exempt,)}
    )
    client = await running.client()
    for i in range(3):
        assert (await client.publish(ALICE.sign(1, f"free {i}")))[2] is True


async def test_rate_limits_fall_back_to_the_client_ip(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Unauthenticated connections share their IP's bucket; pubkeys get their own (R-A5)."""
    running = await started_with(
        start_relay,
        tmp_path,
        network={"real_ip_header": "X-Forwarded-For"},
        rate_limiter={"event": (RateRule("notes", 1, 3600.0, (1,)),)},
    )

    async def from_ip(ip: str) -> RelayClient:
        return await running.client(additional_headers={"X-Forwarded-For": ip})

    first, same_ip, other_ip = (
        await from_ip("198.51.100.1"),
        await from_ip("198.51.100.1"),
        await from_ip("198.51.100.2"),
    )
    assert (await first.publish(ALICE.sign(1, "a")))[2] is True
    assert (await same_ip.publish(BOB.sign(1, "b")))[3] == "rate-limited: notes"
    assert (await other_ip.publish(BOB.sign(1, "c")))[2] is True
    await same_ip.authenticate(BOB)
    assert (await same_ip.publish(BOB.sign(1, "d")))[2] is True  # BOB's own bucket
    assert (await same_ip.publish(BOB.sign(1, "e")))[3] == "rate-limited: notes"


async def test_event_rate_limit_is_per_listed_identity_not_per_key(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With an allowlist an event counts against the connection's listed identity:
    authenticating one more (unlisted, lower) key and signing with it gives no fresh
    bucket; another listed user has their own."""
    alice, bob = Keys(), Keys()
    running = await started_with(
        start_relay,
        tmp_path,
        auth={"pubkey_whitelist": (alice.pubkey, bob.pubkey)},
        rate_limiter={"event": (RateRule("notes", 2, 3600.0, (1,)),)},
    )
    client = await running.client()
    assert (await client.authenticate(alice))[2] is True
    for i in range(2):
        assert (await client.publish(alice.sign(1, str(i))))[2] is True
    assert (await client.publish(alice.sign(1, "third")))[3] == "rate-limited: notes"
    extra = lower_than(alice)
    assert (await client.authenticate(extra))[2] is True
    assert (await client.publish(extra.sign(1, "fresh key")))[3] == "rate-limited: notes"
    other = await running.client()
    assert (await other.authenticate(bob))[2] is True
    assert (await other.publish(bob.sign(1, "bob's own")))[2] is True


# --- emergency modes (R-C3) ----------------------------------------------------------------------


async def test_read_only_mode_blocks_events_and_keeps_reads(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``limitation.read_only``: EVENT → blocked, REQ still served."""
    running = await started_with(start_relay, tmp_path, limitation={"read_only": True})
    client = await running.client()
    event = ALICE.sign(1, "x")
    assert await client.publish(event) == [
        "OK",
        event.id,
        False,
        "blocked: relay is read-only for maintenance",
    ]
    assert (await client.req("s", {}))[1] == ["EOSE", "s"]


async def test_maintenance_mode_sends_the_notice_and_closes(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``information.maintenance``: new connections get the configured NOTICE, then close."""
    running = await started_with(
        start_relay,
        tmp_path,
        information={"maintenance": True, "maintenance_message": "back at 14:00 UTC"},
    )
    client = await running.client()
    assert await client.recv() == ["NOTICE", "back at 14:00 UTC"]
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_a_malformed_websocket_handshake_is_refused(running: RunningRelay) -> None:
    """An upgrade request without a WebSocket key gets HTTP 400 and the socket closes."""
    reply = await http_request(
        running.http_url + "/", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
    )
    assert reply.status == 400


# --- IP allow/deny ------------------------------------------------------------------------------


async def refused(url: str, headers: dict[str, str] | None = None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        await RelayClient.open(url, additional_headers=headers or {})
    return caught.value


async def test_ip_blacklist_refuses_the_handshake(start_relay: StartRelay, tmp_path: Path) -> None:
    """A blacklisted client address gets HTTP 403 with a ``blocked:`` body."""
    running = await started_with(start_relay, tmp_path, auth={"ip_blacklist": ("127.0.0.0/8",)})
    error = await refused(running.url)
    assert error.response.status_code == 403
    assert error.response.body is not None and error.response.body.startswith(b"blocked: ")


async def test_ip_whitelist_admits_only_listed_ranges(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With a whitelist, addresses outside it are refused and inside it admitted."""
    outside = await started_with(start_relay, tmp_path, auth={"ip_whitelist": ("10.0.0.0/8",)})
    assert (await refused(outside.url)).response.status_code == 403
    inside = await start_relay(
        make_config(tmp_path / "other", auth={"ip_whitelist": ("127.0.0.1/32", "::1/128")})
    )
    client = await inside.client()
    assert (await client.req("s", {}))[1] == ["EOSE", "s"]


async def test_real_ip_header_is_read_from_the_trusted_end(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Behind one proxy the right-most X-Forwarded-For entry (the one the proxy appended)
    is the client address: a blacklisted client cannot hide behind an entry it wrote."""
    running = await started_with(
        start_relay,
        tmp_path,
        network={"real_ip_header": "X-Forwarded-For"},
        auth={"ip_blacklist": ("198.51.100.0/24",), "ip_whitelist": ("203.0.113.0/24",)},
    )
    spoofed = await refused(running.url, {"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
    assert spoofed.response.status_code == 403
    outside = await refused(running.url, {"X-Forwarded-For": "192.0.2.1"})
    assert outside.response.status_code == 403
    client = await running.client(additional_headers={"X-Forwarded-For": "10.0.0.1, 203.0.113.9"})
    assert (await client.req("s", {}))[1] == ["EOSE", "s"]


async def test_trusted_proxy_hops_counts_entries_from_the_right(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With two proxies (``trusted_proxy_hops = 2``) the second entry from the right is
    the client; the proxy's own address (right-most) is not."""
    running = await started_with(
        start_relay,
        tmp_path,
        network={"real_ip_header": "X-Forwarded-For", "trusted_proxy_hops": 2},
        auth={"ip_blacklist": ("198.51.100.0/24",)},
    )
    blocked = await refused(running.url, {"X-Forwarded-For": "203.0.113.7, 198.51.100.9, 10.0.0.1"})
    assert blocked.response.status_code == 403
    client = await running.client(
        additional_headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.7, 10.0.0.1"}
    )
    assert (await client.req("s", {}))[1] == ["EOSE", "s"]


async def test_forwarded_header_is_ignored_without_real_ip_header(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Without real_ip_header a client cannot spoof its address with X-Forwarded-For."""
    running = await started_with(start_relay, tmp_path, auth={"ip_whitelist": ("10.0.0.0/8",)})
    error = await refused(running.url, {"X-Forwarded-For": "10.1.2.3"})
    assert error.response.status_code == 403


def test_client_ip_and_ip_permitted() -> None:
    """The pure helpers: the trusted hop from the right, CIDR allow/deny with deny first."""
    headers = {"x-forwarded-for": " 203.0.113.7 , 10.0.0.1"}
    assert client_ip("127.0.0.1", headers, "X-Forwarded-For") == "10.0.0.1"
    assert client_ip("127.0.0.1", headers, "X-Forwarded-For", 2) == "203.0.113.7"
    assert client_ip("127.0.0.1", headers, "X-Forwarded-For", 3) == "127.0.0.1"
    assert client_ip("127.0.0.1", {"x-forwarded-for": "1.2.3.4, garbage"}, "x-forwarded-for") == (
        "127.0.0.1"
    )
    assert client_ip("127.0.0.1", {}, "x-forwarded-for") == "127.0.0.1"
    assert client_ip("127.0.0.1", headers, None) == "127.0.0.1"
    net = ipaddress.ip_network
    assert ip_permitted("10.0.0.1", (net("10.0.0.0/8"),), ())
    assert not ip_permitted("10.0.0.1", (net("10.0.0.0/8"),), (net("10.0.0.0/24"),))
    assert not ip_permitted("11.0.0.1", (net("10.0.0.0/8"),), ())
    assert ip_permitted("11.0.0.1", (), ())
    assert not ip_permitted("not-an-ip", (net("10.0.0.0/8"),), ())


# --- store faults ------------------------------------------------------------------------------


async def test_store_write_failure_is_error_and_the_connection_keeps_working(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A failed commit → ``OK false "error: …"``, nothing fanned out; later writes succeed."""
    config = make_config(tmp_path / "data")
    store = FlakyStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store)
    publisher, subscriber = await running.client(), await running.client()
    await subscriber.req("s", {})
    store.fail_saves = True
    lost = ALICE.sign(1, "lost")
    reply = await publisher.publish(lost)
    assert reply[:3] == ["OK", lost.id, False] and reply[3].startswith("error: ")
    assert await subscriber.nothing_within(0.3)
    store.fail_saves = False
    kept = ALICE.sign(1, "kept")
    assert await publisher.publish(kept) == ["OK", kept.id, True, ""]
    assert (await subscriber.recv_until("EVENT"))[2]["id"] == kept.id
    assert [e["id"] for e in (await publisher.req("all", {}))[0]] == [kept.id]


async def test_store_read_failure_is_closed_error(start_relay: StartRelay, tmp_path: Path) -> None:
    """A failed query → ``CLOSED "error: …"``; COUNT too; the connection stays usable."""
    config = make_config(tmp_path / "data")
    store = FlakyStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store)
    client = await running.client()
    store.fail_queries = True
    end = (await client.req("s", {}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("error: ")
    await client.send("COUNT", "n", {})
    closed = await client.recv_until("CLOSED")
    assert closed[:2] == ["CLOSED", "n"] and closed[2].startswith("error: ")
    store.fail_queries = False
    assert (await client.req("s", {}))[1] == ["EOSE", "s"]


async def test_a_hung_store_answers_error_within_the_store_timeout_then_recovers(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Store calls that never return: OK false / CLOSED "error:" after data.store_timeout,
    the connection keeps serving, and answers are normal again once the store is back."""
    config = make_config(tmp_path / "data", data={"store_timeout": 0.5})
    store = FlakyStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store)
    client = await running.client()
    store.hang = True
    stuck = ALICE.sign(1, "stuck")
    reply = await client.publish(stuck)
    assert reply[:3] == ["OK", stuck.id, False] and reply[3].startswith("error: ")
    end = (await client.req("s", {}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("error: ")
    store.hang = False
    kept = ALICE.sign(1, "kept")
    assert await client.publish(kept) == ["OK", kept.id, True, ""]
    assert [e["id"] for e in (await client.req("s", {}))[0]] == [kept.id]


async def test_created_at_beyond_int64_is_invalid_and_the_connection_keeps_working(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A validly signed created_at no store can hold (window opened wide) → OK false invalid."""
    running = await started_with(
        start_relay, tmp_path, limitation={"max_event_time_newer_than_now": 2**64}
    )
    client = await running.client()
    created_at = 2**63
    event_id = compute_id(ALICE.pubkey, created_at, 1, [], "far future")
    sig = PrivateKey(ALICE.secret).sign_schnorr(bytes.fromhex(event_id)).hex()
    huge = {
        "id": event_id,
        "pubkey": ALICE.pubkey,
        "created_at": created_at,
        "kind": 1,
        "tags": [],
        "content": "far future",
        "sig": sig,
    }
    await client.send("EVENT", huge)
    reply = await client.recv_until("OK")
    assert reply[:3] == ["OK", event_id, False] and reply[3].startswith("invalid: created_at")
    assert (await client.publish(ALICE.sign(1, "fine")))[2] is True


# --- slow consumers and liveness ------------------------------------------------------------------


def slow_consumers(running: RunningRelay) -> float:
    registry = running.relay.metrics.registry
    return registry.get_sample_value("nostr_relay_slow_consumers_total") or 0.0


async def test_a_client_that_stops_reading_is_dropped_and_others_keep_receiving(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """R-P7: the stalled subscriber is disconnected; the reading one gets every event."""
    running = await started_with(start_relay, tmp_path, network={"max_send_buffer": 64 * 1024})
    stalled = await RawClient.open(running.url, receive_buffer=4096)
    await stalled.send("REQ", "flood", {"kinds": [1]})
    while (await stalled.recv())[0] != "EOSE":
        pass
    reader = await running.client(max_size=None)
    await reader.req("flood", {"kinds": [1]})
    publisher = await running.client()
    published: list[str] = []
    received: list[str] = []

    async def read_all() -> None:
        while True:
            message = await reader.recv_until("EVENT")
            received.append(message[2]["id"])

    reading = asyncio.create_task(read_all())
    try:
        for i in range(400):
            event = ALICE.sign(1, f"{i} " + "x" * 50_000)
            assert (await publisher.publish(event))[2] is True
            published.append(event.id)
            if slow_consumers(running) >= 1:
                break
        assert slow_consumers(running) == 1, f"not dropped after {len(published)} events"
        await stalled.wait_closed()
        last = ALICE.sign(1, "after the drop")
        await publisher.publish(last)
        published.append(last.id)
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while len(received) < len(published) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        reading.cancel()
    assert received == published
    assert len(running.relay.peers) == 2


async def test_heartbeat_drops_a_silent_connection_and_keeps_a_responsive_one(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A connection that never answers pings is dropped; one that answers stays open."""
    running = await started_with(
        start_relay, tmp_path, network={"heartbeat_interval": 0.1, "heartbeat_timeout": 0.3}
    )
    responsive = await running.client()  # websockets answers pings in the background
    silent = await RawClient.open(running.url)
    await silent.wait_closed()
    # The responsive client connected first and was idle all along, yet is still served.
    assert (await responsive.req("s", {}))[1] == ["EOSE", "s"]
    assert len(running.relay.peers) == 1


async def test_heartbeat_pings_idle_connections(start_relay: StartRelay, tmp_path: Path) -> None:
    """After heartbeat_interval of silence the relay sends a WebSocket ping."""
    running = await started_with(
        start_relay, tmp_path, network={"heartbeat_interval": 0.1, "heartbeat_timeout": 5.0}
    )
    client = await RawClient.open(running.url)

    async def first_ping() -> bytes:
        while True:
            data = await client.reader.read(65536)
            assert data, "connection closed before any ping"
            client.protocol.receive_data(data)
            for event in client.protocol.events_received():
                if isinstance(event, Frame) and event.opcode.name == "PING":
                    return bytes(event.data)

    assert await asyncio.wait_for(first_ping(), TIMEOUT) == b"mlsgw"
    client.close()


async def test_shutdown_closes_websockets_with_1001(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Stopping the server sends a going-away close frame to every client."""
    running = await started_with(start_relay, tmp_path)
    client = await running.client()
    await client.req("s", {})
    await running.server.shutdown(2.0)
    assert await client.recv() == ["CLOSED", "s", "error: relay is shutting down, reconnect"]
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


# --- pipelined publish (issue 13) -------------------------------------------------------------


async def oks(client: RawClient, count: int) -> list[list[Any]]:
    """The next ``count`` OK frames (the AUTH challenge and anything else skipped)."""
    found: list[list[Any]] = []
    while len(found) < count:
        frame = await client.recv()
        if frame[0] == "OK":
            found.append(frame)
    return found


@pytest.mark.parametrize("size", [8, VERIFY_IN_THREAD_MIN + 8])
async def test_a_bad_signature_in_a_pipelined_batch_fails_alone(
    running: RunningRelay, size: int
) -> None:
    """EVENTs in one write, one with a forged signature: that one gets OK false
    "invalid: bad signature", the others OK true in order and are stored, whether the
    batch was verified on the loop (small) or on the verify thread (big)."""
    client = await RawClient.open(running.url)
    events = [ALICE.sign(1, f"batch {i}") for i in range(size)]
    forged = {**events[5].to_dict(), "sig": events[6].sig}
    frames = [["EVENT", e.to_dict()] for e in events]
    frames[5] = ["EVENT", forged]
    await client.send_many(frames)
    answers = await oks(client, size)
    assert [a[1] for a in answers] == [e.id for e in events]
    assert answers[5][2:] == [False, "invalid: bad signature"]
    assert all(a[2] is True for i, a in enumerate(answers) if i != 5)
    # only a big batch was worth the hop to the verify thread
    assert (running.relay.publisher._verifier is not None) == (size >= VERIFY_IN_THREAD_MIN)
    reader = await running.client()
    stored, _ = await reader.req("all", {"kinds": [1], "limit": 100})
    assert {e["id"] for e in stored} == {e.id for i, e in enumerate(events) if i != 5}
    client.close()


async def test_oks_keep_the_order_sent_under_a_window_of_16(running: RunningRelay) -> None:
    """Batches of 16 mixing new, duplicate, ephemeral and replaceable EVENTs with a
    REQ: every OK comes back in the order the EVENTs were sent."""
    client = await RawClient.open(running.url)
    first = ALICE.sign(1, "first")
    await client.send_many([["EVENT", first.to_dict()]])
    assert (await oks(client, 1))[0][1:3] == [first.id, True]
    sent: list[str] = []
    now = int(time.time()) - 10
    for batch in range(4):
        frames: list[list[Any]] = []
        for i in range(16):
            if i == 3:
                event = first  # already stored: "duplicate:"
            elif i == 7:
                event = ALICE.sign(20001, f"ephemeral {batch}")
            elif i == 9:
                event = ALICE.sign(10002, f"replaceable {batch}", created_at=now + batch)
            else:
                event = ALICE.sign(1, f"{batch}-{i}")
            frames.append(["EVENT", event.to_dict()])
            sent.append(event.id)
        frames.insert(11, ["REQ", f"q{batch}", {"ids": [first.id]}])
        await client.send_many(frames)
    answers: list[list[Any]] = []
    while len(answers) < len(sent):
        frame = await client.recv()
        if frame[0] == "OK":
            answers.append(frame)
        else:
            assert frame[0] in ("EVENT", "EOSE")
    assert [a[1] for a in answers] == sent
    assert [a for a in answers if a[2] is not True] == []
    assert [a[3].split(":")[0] for a in answers[3::16]] == ["duplicate"] * 4
    client.close()
