"""NIP-42 and the allowlist over real sockets (R-A1, R-A2, NIP-70)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from relay.config import load_config
from relay.core.bech32 import bech32_encode
from relay.core.session import MAX_AUTHENTICATED_KEYS
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import TIMEOUT, Keys, RelayClient

ALICE, BOB, CAROL = Keys(), Keys(), Keys()
RELAY_URL = "wss://relay.example.com"


async def allowlisted(
    start_relay: StartRelay, tmp_path: Path, *keys: str, **sections: Any
) -> RunningRelay:
    """A relay whose allowlist holds ``keys`` and whose public URL is RELAY_URL."""
    auth = {"pubkey_whitelist": tuple(keys), **sections.pop("auth", {})}
    config = make_config(
        tmp_path / "data", auth=auth, information={"relay_url": RELAY_URL}, **sections
    )
    running: RunningRelay = await start_relay(config)
    return running


async def send_auth(client: RelayClient, keys: Keys, **overrides: Any) -> list[Any]:
    """AUTH with a kind-22242 event (tags/created_at overridable); returns the OK."""
    challenge = await client.get_challenge()
    tags = overrides.pop("tags", [["relay", RELAY_URL], ["challenge", challenge]])
    event = keys.sign(22242, "", tags, created_at=overrides.pop("created_at", None))
    await client.send("AUTH", event.to_dict())
    reply = await client.recv_until("OK")
    assert reply[1] == event.id, "every OK echoes the id of the event it answers"
    return reply


# --- allowlist on --------------------------------------------------------------------------------


async def test_unauthenticated_req_count_and_event_are_auth_required(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Allowlist on: nothing is served before AUTH, each with ``auth-required:``."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    end = (await client.req("s", {}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("auth-required: ")
    await client.send("COUNT", "n", {})
    closed = await client.recv_until("CLOSED")
    assert closed[:2] == ["CLOSED", "n"] and closed[2].startswith("auth-required: ")
    event = ALICE.sign(1, "hi")
    reply = await client.publish(event)
    assert reply[:3] == ["OK", event.id, False] and reply[3].startswith("auth-required: ")


async def test_authenticated_but_unlisted_is_restricted(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """AUTH as a pubkey not on the list succeeds, but REQ/EVENT are ``restricted:``."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    assert (await send_auth(client, BOB))[2:] == [True, ""]
    end = (await client.req("s", {}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("restricted: ")
    reply = await client.publish(BOB.sign(1, "hi"))
    assert reply[2] is False and reply[3].startswith("restricted: ")


async def test_listed_pubkey_may_read_and_write(start_relay: StartRelay, tmp_path: Path) -> None:
    """AUTH as a listed pubkey unlocks REQ, COUNT and EVENT."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    assert (await send_auth(client, ALICE))[2] is True
    event = ALICE.sign(1, "hello")
    assert await client.publish(event) == ["OK", event.id, True, ""]
    events, end = await client.req("s", {})
    assert [e["id"] for e in events] == [event.id] and end == ["EOSE", "s"]
    await client.send("COUNT", "n", {})
    assert await client.recv_until("COUNT") == ["COUNT", "n", {"count": 1}]


async def test_npub_in_the_allowlist(start_relay: StartRelay, tmp_path: Path) -> None:
    """An ``npub1…`` allowlist entry (decoded by the config loader) admits that pubkey."""
    npub = bech32_encode("npub", bytes.fromhex(ALICE.pubkey))
    config_file = tmp_path / "relay.toml"
    config_file.write_text(
        f'[network]\nhost = "127.0.0.1"\nport = 0\n[data]\npath = "{tmp_path / "data"}"\n'
        f'[auth.req]\npubkey_whitelist = ["{npub}"]\n'
    )
    running: RunningRelay = await start_relay(load_config(config_file, {}))
    client = await running.client()
    assert (await client.authenticate(ALICE))[2] is True
    assert (await client.publish(ALICE.sign(1, "via npub")))[2] is True
    stranger = await running.client()
    assert (await stranger.authenticate(BOB))[2] is True
    assert (await stranger.publish(BOB.sign(1, "not listed")))[2] is False


async def test_author_must_be_an_authenticated_pubkey(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A listed connection may not publish an event signed by someone else."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    await send_auth(client, ALICE)
    event = CAROL.sign(1, "not mine")
    reply = await client.publish(event)
    assert reply[:3] == ["OK", event.id, False] and reply[3].startswith("restricted: ")


async def test_throwaway_key_kinds_445_and_1059_are_accepted_from_a_listed_connection(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """MLS clients sign 445 and 1059 with throw-away keys: the connection is what counts."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    await send_auth(client, ALICE)
    wrap = Keys().sign(1059, "ciphertext", [["p", BOB.pubkey]])
    assert await client.publish(wrap) == ["OK", wrap.id, True, ""]
    group = Keys().sign(445, "ciphertext", [["h", "ab" * 32]])
    assert await client.publish(group) == ["OK", group.id, True, ""]
    stranger = await running.client()
    await send_auth(stranger, BOB)
    other = Keys().sign(1059, "ciphertext", [["p", ALICE.pubkey]])
    reply = await stranger.publish(other)
    assert reply[2] is False and reply[3].startswith("restricted: ")


async def test_several_pubkeys_on_one_connection(start_relay: StartRelay, tmp_path: Path) -> None:
    """Each AUTH adds a pubkey: the connection may publish as any of them."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    assert (await send_auth(client, BOB))[2] is True
    assert (await client.publish(BOB.sign(1, "bob alone")))[2] is False  # BOB is not listed
    assert (await send_auth(client, ALICE))[2] is True
    assert (await client.publish(BOB.sign(1, "bob with alice")))[2] is True
    assert (await client.publish(ALICE.sign(1, "alice")))[2] is True
    assert (await client.publish(CAROL.sign(1, "carol")))[2] is False


async def test_auth_beyond_the_key_cap_is_restricted_and_the_connection_keeps_its_keys(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """One AUTH past MAX_AUTHENTICATED_KEYS gets OK false restricted naming the cap; the
    connection stays open, still reads and counts what its earlier keys may, and an AUTH
    of one of them still succeeds."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    sender = await running.client()
    await send_auth(sender, ALICE)
    wrap = Keys().sign(1059, "ciphertext", [["p", ALICE.pubkey]])
    assert (await sender.publish(wrap))[2] is True
    client = await running.client()
    assert (await send_auth(client, ALICE))[2] is True
    for _ in range(MAX_AUTHENTICATED_KEYS - 1):
        assert (await send_auth(client, Keys()))[2] is True
    refused = await send_auth(client, BOB)
    assert refused[2] is False and refused[3] == (
        f"restricted: too many authenticated keys on this connection"
        f" (max {MAX_AUTHENTICATED_KEYS}); open another connection for more"
    )
    events, end = await client.req("s", {"kinds": [1059]})
    assert [e["id"] for e in events] == [wrap.id] and end == ["EOSE", "s"]
    await client.send("COUNT", "n", {"kinds": [1059]})
    assert await client.recv_until("COUNT") == ["COUNT", "n", {"count": 1}]
    assert (await send_auth(client, ALICE))[2:] == [True, ""]


async def test_author_match_can_be_turned_off(start_relay: StartRelay, tmp_path: Path) -> None:
    """``auth.require_author_match = false``: a listed connection may relay others' events."""
    running = await allowlisted(
        start_relay, tmp_path, ALICE.pubkey, auth={"require_author_match": False}
    )
    client = await running.client()
    await send_auth(client, ALICE)
    assert (await client.publish(CAROL.sign(1, "relayed")))[2] is True


# --- AUTH failures -------------------------------------------------------------------------------


async def test_wrong_challenge_is_auth_required_and_a_retry_succeeds(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Another connection's challenge → OK false auth-required; the own one still works."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    other = await running.client()
    client = await running.client()
    stolen = await other.get_challenge()
    reply = await send_auth(client, ALICE, tags=[["relay", RELAY_URL], ["challenge", stolen]])
    assert reply[2] is False and reply[3].startswith("auth-required: ")
    assert (await send_auth(client, ALICE))[2:] == [True, ""]
    assert (await client.req("s", {}))[1] == ["EOSE", "s"]


async def test_wrong_relay_tag_is_auth_required(start_relay: StartRelay, tmp_path: Path) -> None:
    """A relay tag naming another host (relay_url set) is refused; the right one works."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    challenge = await client.get_challenge()
    for tags in (
        [["relay", "wss://evil.example.com"], ["challenge", challenge]],
        [["relay", "wss://relay.example.com:99999"], ["challenge", challenge]],
        [["challenge", challenge]],
    ):
        reply = await send_auth(client, ALICE, tags=tags)
        assert reply[2] is False and reply[3].startswith("auth-required: "), reply
    assert (await send_auth(client, ALICE))[2] is True


async def test_stale_auth_event_is_auth_required(start_relay: StartRelay, tmp_path: Path) -> None:
    """created_at more than 10 minutes away → auth-required; a fresh one then succeeds."""
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    for offset in (-11 * 60, 11 * 60):
        reply = await send_auth(client, ALICE, created_at=int(time.time()) + offset)
        assert reply[2] is False and reply[3].startswith("auth-required: ")
    assert (await send_auth(client, ALICE))[2] is True


async def test_forged_auth_event_is_auth_required(running: RunningRelay) -> None:
    """A bad signature on AUTH → OK false auth-required echoing the id."""
    client = await running.client()
    challenge = await client.get_challenge()
    event = ALICE.sign(22242, "", [["challenge", challenge]])
    await client.send("AUTH", {**event.to_dict(), "sig": BOB.sign(1).sig})
    assert await client.recv_until("OK") == [
        "OK",
        event.id,
        False,
        "auth-required: bad signature",
    ]


async def test_relay_tag_must_name_the_request_host_when_relay_url_is_unset(
    running: RunningRelay,
) -> None:
    """Without information.relay_url the relay tag is checked against the WebSocket
    request's Host (any scheme): an AUTH signed for another relay is refused."""
    client = await running.client()
    port = running.server.port
    for tag in ("wss://evil-relay.example", f"ws://evil-relay.example:{port}", "ws://127.0.0.1"):
        reply = await client.authenticate(ALICE, tag)
        assert reply[2] is False and reply[3].startswith("auth-required: relay tag"), reply
    challenge = await client.get_challenge()
    await client.send("AUTH", ALICE.sign(22242, "", [["challenge", challenge]]).to_dict())
    assert (await client.recv_until("OK"))[3] == "auth-required: AUTH event has no relay tag"
    assert (await client.authenticate(ALICE, f"wss://127.0.0.1:{port}/"))[2] is True
    other = await running.client()
    assert (await other.authenticate(BOB, f"ws://127.0.0.1:{port}"))[2] is True


async def test_a_handshake_without_host_cannot_authenticate_without_relay_url(
    running: RunningRelay,
) -> None:
    """With relay_url unset and no Host header there is nothing to check the relay tag
    against. HTTP/1.1 requires Host, so the handshake itself is refused (400) before any
    AUTH; the session's own fail-closed check is covered in tests/relay/core."""
    reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
    writer.write(
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        reply = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 400 ") and b"Host" in reply


async def test_auth_disabled_sends_no_challenge_and_refuses_auth(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With auth.enabled = false there is no challenge and AUTH cannot succeed."""
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", auth={"enabled": False})
    )
    client = await running.client()
    event = ALICE.sign(1, "first message")
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert client.challenge is None
    auth = ALICE.sign(22242, "", [["challenge", "anything"]])
    await client.send("AUTH", auth.to_dict())
    reply = await client.recv_until("OK")
    assert reply[:3] == ["OK", auth.id, False]


# --- open relay (empty allowlist) ----------------------------------------------------------------


async def test_empty_allowlist_serves_ordinary_kinds_without_auth(running: RunningRelay) -> None:
    """Default config: kind 1 publish and read need no AUTH."""
    client = await running.client()
    assert (await client.publish(ALICE.sign(1, "open")))[2] is True
    assert (await client.req("s", {"kinds": [1]}))[1] == ["EOSE", "s"]


async def test_protected_event_only_from_its_authenticated_author(running: RunningRelay) -> None:
    """NIP-70: ``["-"]`` without AUTH → auth-required; as another key → restricted."""
    client = await running.client()
    protected = ALICE.sign(1, "mine only", [["-"]])
    reply = await client.publish(protected)
    assert reply[2] is False and reply[3].startswith("auth-required: ")
    await client.authenticate(BOB)
    reply = await client.publish(protected)
    assert reply[2] is False and reply[3].startswith("restricted: ")
    await client.authenticate(ALICE)
    assert await client.publish(protected) == ["OK", protected.id, True, ""]


async def test_blacklisted_pubkey_is_blocked(start_relay: StartRelay, tmp_path: Path) -> None:
    """``pubkey_blacklist`` → ``blocked:`` for its events and its authenticated REQs."""
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", auth={"pubkey_blacklist": (CAROL.pubkey,)})
    )
    client = await running.client()
    reply = await client.publish(CAROL.sign(1, "spam"))
    assert reply[2] is False and reply[3].startswith("blocked: ")
    await client.authenticate(CAROL)
    end = (await client.req("s", {}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("blocked: ")
