"""Marmot interop (MIP-00 … MIP-03, R-M11): the whole lifecycle of a Marmot client, as
White Noise and the other Marmot implementations publish it, over real sockets with
nostr-sdk's NIP-42 auto-auth, on the default configuration with an allowlist.

Bob publishes his key package relay list (10051) and MIP-00 key packages; Alice fetches
one (consuming it), publishes the Add commit from an ephemeral key, waits for the relay's
OK, then gift-wraps the welcome to Bob's ``p`` (no ``h``: Marmot never tags it). Bob
learns the group id from the welcome only, reads the group's 445s by naming it, deletes
the consumed key package (NIP-09), publishes his self-update commit, and the two exchange
application messages live in both directions; Bob catches up with ``since`` after a
disconnect. Eve, on the allowlist but outside the group, finds nothing of it.

What is real and what stands in: the Nostr layers are real (signed events, NIP-42, NIP-44
v2 encryption of the group events with a key pair made from the "exporter secret", NIP-59
gift wrap and seal of the unsigned 444 rumor). The MLS payloads are opaque random bytes
standing in for MLS messages: the KeyPackage in the 443's content, the Welcome inside the
444 rumor, the Commits and application messages inside the 445s, and the exporter secret.
The relay never decrypts any of them. The only Marmot implementation on PyPI,
``mdk-python`` (MDK's bindings, 0.6.0 … 0.8.0), ships a native library that needs
glibc ≥ 2.38 (0.8.0: 2.39); this machine (Debian 12, glibc 2.36) cannot load it. Where a
real Welcome carries the group's ``nostr_group_id`` in its ``marmot_group_data`` extension,
the stand-in Welcome carries those 32 bytes at its start: Bob learns the id from the
end-to-end encrypted welcome either way.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nostr_sdk as sdk
import orjson
import pytest

from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import TIMEOUT, Keys, RelayClient
from tests.support.nostr_sdk import WAIT, sdk_client, uniffi_loop  # noqa: F401

pytestmark = pytest.mark.usefixtures("uniffi_loop")

H = sdk.SingleLetterTag.from_byte(ord("h"))


def opaque_mls(size: int = 256) -> bytes:
    """Random bytes standing in for a TLS-serialized MLS object (see the module doc)."""
    return os.urandom(size)


def tags(*raw: list[str]) -> list[sdk.Tag]:
    return [sdk.Tag.parse(t) for t in raw]


def mip00_keypackage(keys: sdk.Keys, relay_url: str, created_at: int | None = None) -> sdk.Event:
    """A kind-443 KeyPackage exactly as MIP-00 (and MDK's legacy 443) shape it: base64
    content with an explicit ``encoding`` tag, the MLS capability tags, the relays it is
    published to, the KeyPackageRef in ``i``, the client, and NIP-70's ``-``."""
    return (
        sdk.EventBuilder(sdk.Kind(443), base64.b64encode(opaque_mls()).decode())
        .tags(
            tags(
                ["mls_protocol_version", "1.0"],
                ["mls_ciphersuite", "0x0001"],
                ["mls_extensions", "0x000a", "0xf2ee"],
                ["mls_proposals", "0x000a"],
                ["relays", relay_url],
                ["i", os.urandom(32).hex()],
                ["-"],
                ["client", "mlsgw-interop-test"],
                ["encoding", "base64"],
            )
        )
        .custom_created_at(sdk.Timestamp.from_secs(created_at or int(time.time())))
        .finalize(keys)
    )


class MarmotGroup:
    """One member's view of a Marmot group: the ``nostr_group_id`` and the current
    epoch's exporter secret, from which MIP-03 derives the NIP-44 key pair."""

    def __init__(self, group_id: bytes, exporter_secret: bytes) -> None:
        self.group_id = group_id
        self.secret = sdk.SecretKey.from_bytes(exporter_secret)
        self.public = sdk.Keys(self.secret).public_key()

    @property
    def h(self) -> str:
        return self.group_id.hex()

    def group_event(self, mls_message: bytes) -> sdk.Event:
        """A kind-445 Group Event (MIP-03): signed by a fresh ephemeral key, only an
        ``h`` tag, the MLSMessage NIP-44 encrypted with the exporter-secret key pair."""
        content = sdk.nip44_encrypt(
            self.secret, self.public, base64.b64encode(mls_message).decode(), sdk.Nip44Version.V2
        )
        return (
            sdk.EventBuilder(sdk.Kind(445), content)
            .tags(tags(["h", self.h]))
            .finalize(sdk.Keys.generate())
        )

    def open(self, event: sdk.Event) -> bytes:
        """The MLSMessage inside a 445 of this group."""
        return base64.b64decode(sdk.nip44_decrypt(self.secret, self.public, event.content()))


def welcome_for(
    admin: sdk.Keys, invitee: sdk.PublicKey, keypackage: sdk.Event, group: MarmotGroup, url: str
) -> sdk.Event:
    """MIP-02: an unsigned kind-444 rumor (``e`` = the KeyPackage used, ``relays``, base64
    content) sealed and gift-wrapped (NIP-59) to the invitee's ``p``, with no ``h``."""
    welcome = group.group_id + bytes.fromhex(group.secret.to_hex()) + opaque_mls()
    rumor = (
        sdk.EventBuilder(sdk.Kind(444), base64.b64encode(welcome).decode())
        .tags(tags(["e", keypackage.id().to_hex()], ["relays", url], ["encoding", "base64"]))
        .finalize_unsigned(admin.public_key())
    )
    return sdk.nip59_make_gift_wrap(admin, invitee, rumor)


def join(wrap: sdk.Event, invitee: sdk.Keys) -> tuple[MarmotGroup, str]:
    """Bob's side of the welcome: the group (id and exporter secret, from the stand-in
    Welcome) and the id of the key package that was used."""
    rumor = orjson.loads(sdk.UnwrappedGift.from_gift_wrap(invitee, wrap).rumor().as_json())
    assert rumor["kind"] == 444 and "sig" not in rumor
    welcome = base64.b64decode(rumor["content"])
    (used,) = (t[1] for t in rumor["tags"] if t[0] == "e")
    return MarmotGroup(welcome[:32], welcome[32:64]), used


def deletion(keys: sdk.Keys, event_id: str) -> sdk.Event:
    """NIP-09: kind 5 naming the key package (``e``) and its kind (``k``)."""
    return (
        sdk.EventBuilder(sdk.Kind(5), "key package consumed")
        .tags(tags(["e", event_id], ["k", "443"]))
        .finalize(keys)
    )


def in_group(group: MarmotGroup, since: int | None = None) -> sdk.Filter:
    f = sdk.Filter().kind(sdk.Kind(445)).custom_tag(H, group.h)
    return f if since is None else f.since(sdk.Timestamp.from_secs(since))


async def fetch(client: sdk.Client, *filters: sdk.Filter) -> list[sdk.Event]:
    events: list[sdk.Event] = await client.fetch_events(sdk.ReqTarget.auto(list(filters)), WAIT)
    return events


async def send(client: sdk.Client, event: sdk.Event) -> None:
    output = await client.send_event(event)
    assert output.failed == {} and len(output.success) == 1, output.failed


class Live:
    """The NEW_EVENT notifications of one nostr-sdk client, in arrival order."""

    def __init__(self, client: sdk.Client) -> None:
        self.notifications = client.notifications()

    async def next(self, accept: Callable[[sdk.Event], bool]) -> sdk.Event:
        async def wait() -> sdk.Event:
            while True:
                notification = await self.notifications.next()
                assert notification is not None
                if notification.is_NEW_EVENT():
                    event: sdk.Event = notification.event
                    if accept(event):
                        return event

        return await asyncio.wait_for(wait(), TIMEOUT)


def tags_of(event: sdk.Event) -> list[list[str]]:
    result: list[list[str]] = orjson.loads(event.as_json())["tags"]
    return result


def ids(events: list[sdk.Event]) -> set[str]:
    return {e.id().to_hex() for e in events}


def with_id(event: sdk.Event) -> Callable[[sdk.Event], bool]:
    wanted = event.id().to_hex()
    return lambda e: e.id().to_hex() == wanted


async def eve_live_until_sentinels(eve: RelayClient, eve_keys: Keys, url: str) -> set[str]:
    """What Eve's live subscriptions received before her own sentinels: a 445 in a group
    of hers and a gift wrap to her. Fan-out keeps publish order, so anything of Alice and
    Bob's group that reached her arrived before them."""
    own_group = os.urandom(32).hex()
    s445 = Keys().sign(445, "sentinel", [["h", own_group]])
    s1059 = Keys().sign(1059, "sentinel", [["p", eve_keys.pubkey]])
    for sentinel in (s445, s1059):
        assert (await eve.publish(sentinel))[2] is True
    waiting = {("g", s445.id), ("all", s445.id), ("w", s1059.id), ("all", s1059.id)}
    seen: set[str] = set()
    while waiting:
        msg = await eve.recv()
        if msg[0] != "EVENT":
            continue
        if (msg[1], msg[2]["id"]) in waiting:
            waiting.discard((msg[1], msg[2]["id"]))
        elif msg[2]["id"] not in (s445.id, s1059.id):
            seen.add(msg[2]["id"])
    return seen


def own_keys(keys: sdk.Keys) -> Keys:
    """The same identity for the project's own test client."""
    return Keys(bytes.fromhex(keys.secret_key().to_hex()))


async def count(client: RelayClient, *filters: dict[str, Any]) -> int:
    await client.send("COUNT", "n", *filters)
    answer = await client.recv_until("COUNT")
    result: int = answer[2]["count"]
    return result


async def test_marmot_lifecycle_on_the_default_configuration_with_an_allowlist(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    alice, bob, eve = sdk.Keys.generate(), sdk.Keys.generate(), sdk.Keys.generate()
    eve_own = own_keys(eve)
    allowlist = tuple(k.public_key().to_hex() for k in (alice, bob, eve))
    running: RunningRelay = await start_relay(
        make_config(tmp_path, auth={"pubkey_whitelist": allowlist})
    )
    url = running.url
    group_events: list[sdk.Event] = []

    # Eve watches every kind she could, live, from the start (the project's own client,
    # to see the raw protocol).
    eve_raw = await running.client()
    assert (await eve_raw.authenticate(eve_own))[2] is True
    for sub_id, f in (("g", {"kinds": [445]}), ("w", {"kinds": [1059]}), ("all", {})):
        await eve_raw.send("REQ", sub_id, f)
        await eve_raw.recv_until("EOSE")

    # MIP-00: Bob advertises where his key packages are and publishes two.
    bob_client = await sdk_client(url, bob)
    relay_list = sdk.EventBuilder(sdk.Kind(10051), "").tags(tags(["relay", url])).finalize(bob)
    await send(bob_client, relay_list)
    now = int(time.time())
    keypackages = [mip00_keypackage(bob, url, now - 10 + i) for i in range(2)]
    for kp in keypackages:
        await send(bob_client, kp)
    bob_inbox = Live(bob_client)
    await bob_client.subscribe(
        sdk.ReqTarget.auto([sdk.Filter().kind(sdk.Kind(1059)).pubkey(bob.public_key())])
    )

    # Alice finds Bob's key package relays, then fetches (and so consumes) one.
    alice_client = await sdk_client(url, alice)
    (found_list,) = await fetch(
        alice_client, sdk.Filter().kind(sdk.Kind(10051)).author(bob.public_key())
    )
    assert found_list.verify() and found_list.id() == relay_list.id()
    (kp,) = await fetch(alice_client, sdk.Filter().kind(sdk.Kind(443)).author(bob.public_key()))
    assert kp.verify() and kp.as_json() == keypackages[0].as_json()

    # MIP-03/MIP-02: the Add commit from an ephemeral key, acknowledged, then the welcome.
    group = MarmotGroup(os.urandom(32), os.urandom(32))
    add_commit = group.group_event(opaque_mls())
    await send(alice_client, add_commit)
    group_events.append(add_commit)
    alice_live = Live(alice_client)
    await alice_client.subscribe(sdk.ReqTarget.auto([in_group(group)]))
    wrap = welcome_for(alice, bob.public_key(), kp, group, url)
    assert [t[0] for t in tags_of(wrap)] == ["p"]  # no h, as Marmot does
    await send(alice_client, wrap)

    # Bob receives the welcome live, learns the group id from it, and reads the group.
    received = await bob_inbox.next(with_id(wrap))
    joined, used = join(received, bob)
    assert joined.h == group.h and used == kp.id().to_hex()
    (commit,) = await fetch(bob_client, in_group(joined))
    assert commit.id() == add_commit.id() and joined.open(commit)

    # Bob deletes the consumed key package (NIP-09), then sends his self-update commit.
    await send(bob_client, deletion(bob, used))
    bob_live = Live(bob_client)
    await bob_client.subscribe(sdk.ReqTarget.auto([in_group(joined)]))
    self_update = joined.group_event(opaque_mls())
    await send(bob_client, self_update)
    group_events.append(self_update)
    assert (await alice_live.next(with_id(self_update))).verify()

    # Application messages, live in both directions.
    hello = opaque_mls(120)
    to_bob = group.group_event(hello)
    await send(alice_client, to_bob)
    group_events.append(to_bob)
    assert joined.open(await bob_live.next(with_id(to_bob))) == hello
    reply = opaque_mls(80)
    to_alice = joined.group_event(reply)
    await send(bob_client, to_alice)
    group_events.append(to_alice)
    assert group.open(await alice_live.next(with_id(to_alice))) == reply

    # Bob goes offline, Alice writes twice, Bob catches up with since.
    await bob_client.shutdown()
    since = int(time.time())
    missed = []
    for _ in range(2):
        event = group.group_event(opaque_mls(64))
        await send(alice_client, event)
        missed.append(event)
    group_events += missed
    bob_again = await sdk_client(url, bob)
    caught_up = await fetch(bob_again, in_group(joined, since=since))
    assert ids(missed) <= ids(caught_up) <= ids(group_events)
    assert all(e.created_at().as_secs() >= since for e in caught_up)
    assert ids(await fetch(bob_again, in_group(joined))) == ids(group_events)

    # The key package Bob deleted is never served again, to anyone.
    for client in (bob_again, alice_client):
        assert kp.id().to_hex() not in ids(
            await fetch(client, sdk.Filter().kind(sdk.Kind(443)).author(bob.public_key()))
        )
        assert await fetch(client, sdk.Filter().id(kp.id())) == []
    bob_raw = await running.client()
    assert (await bob_raw.authenticate(own_keys(bob)))[2] is True
    await bob_raw.send_raw('["EVENT",' + kp.as_json() + "]")
    refused = await bob_raw.recv_until("OK")
    assert refused[2] is False and refused[3].startswith("blocked:")

    # Eve, allowlisted but without the group id, finds none of it: live, stored, COUNT.
    group_ids = ids(group_events) | {wrap.id().to_hex()}
    assert not await eve_live_until_sentinels(eve_raw, eve_own, url) & group_ids
    eve_client = await sdk_client(url, eve)
    throwaways = [e.author() for e in group_events]
    for f in (
        sdk.Filter(),
        sdk.Filter().kind(sdk.Kind(445)),
        sdk.Filter()
        .kinds([sdk.Kind(445), sdk.Kind(1059), sdk.Kind(444)])
        .since(sdk.Timestamp.from_secs(0)),
        sdk.Filter().authors(throwaways),
        sdk.Filter().ids([e.id() for e in group_events] + [wrap.id()]),
        sdk.Filter().kind(sdk.Kind(1059)).pubkey(bob.public_key()),
        sdk.Filter().kind(sdk.Kind(445)).custom_tag(H, os.urandom(32).hex()),
    ):
        assert not ids(await fetch(eve_client, f)) & group_ids, f.as_json()
    assert await count(eve_raw, {"kinds": [445]}) == 1  # her own sentinel only
    assert await count(eve_raw, {"kinds": [1059]}, {"kinds": [445, 444]}) == 2  # her sentinels
    everything = await fetch(eve_client, sdk.Filter())
    assert await count(eve_raw, {}) == len(everything)  # public kinds, none of the group
    assert await count(eve_raw, {"authors": [a.to_hex() for a in throwaways]}) == 0
    # Whoever names the group counts it; Alice, its recorded owner, also without naming it.
    assert await count(bob_raw, {"kinds": [445], "#h": [group.h]}) == len(group_events)
    alice_raw = await running.client()
    assert (await alice_raw.authenticate(own_keys(alice)))[2] is True
    assert await count(alice_raw, {"kinds": [445]}) == len(group_events)

    for sdk_c in (alice_client, bob_again, eve_client):
        await sdk_c.shutdown()
    for raw in (eve_raw, bob_raw, alice_raw):
        await raw.close()


async def test_the_stand_in_event_shapes_follow_the_mips() -> None:
    """The shapes this suite sends are the MIPs': checked once, without a relay."""
    bob = sdk.Keys.generate()
    kp = orjson.loads(mip00_keypackage(bob, "wss://relay.example").as_json())
    names = [t[0] for t in kp["tags"]]
    assert kp["kind"] == 443 and names[:3] == [
        "mls_protocol_version",
        "mls_ciphersuite",
        "mls_extensions",
    ]
    assert {"relays", "i", "-", "client", "encoding"} <= set(names)
    assert base64.b64decode(kp["content"], validate=True)
    group = MarmotGroup(os.urandom(32), os.urandom(32))
    message = orjson.loads(group.group_event(b"mls").as_json())
    assert message["kind"] == 445 and message["tags"] == [["h", group.h]]
    assert message["pubkey"] != orjson.loads(group.group_event(b"mls").as_json())["pubkey"]
